"""What a sweep leaves behind: one record per point (``schema``: its typed, versioned parts; ``records``: atomic
writes, failure entries, the resume rule), the point id that names a record (``identity``), and the provenance
and redaction a record carries. Suites, checks, reports and tools read and write records only through ``records``.
"""
