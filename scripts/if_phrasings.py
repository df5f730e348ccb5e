"""How the sibling's training prompts state each constraint kind (``if_train_data.py``).

Several phrasings per kind, in this project's own words, so that the sibling learns the constraint and not one
sentence; ``tests/test_real_training_data.py`` checks that no training prompt shares 8 consecutive words with an
IFEval or AlpacaEval prompt.
"""

from __future__ import annotations

SAY: dict[str, list[str]] = {
    "lowercase": [
        "Write your whole answer in lowercase letters; capital letters are not allowed.",
        "Use only lowercase letters in the entire reply, with no capitals at all.",
        "Please answer in all lowercase, not a single capital letter anywhere.",
    ],
    "capital": [
        "Reply only in capital letters.",
        "Write the whole reply in uppercase English letters.",
        "Use ALL CAPS for the entire answer.",
    ],
    "no_comma": [
        "Do not use a single comma in your reply.",
        "Avoid commas completely in the answer.",
        "Write it without any commas at all.",
    ],
    "title": [
        "Start with a title in double angular brackets, such as <<a title>>.",
        "Give the reply a title and put it inside double angle brackets, like <<my title>>.",
        "Begin with a title wrapped in << and >>.",
    ],
    "end": [
        'End your answer with the exact phrase "{p}" and write nothing after it.',
        'The very last words of your reply must be "{p}", with nothing following them.',
        'Close the reply with these exact words: "{p}"',
    ],
    "quote": [
        "Put your entire answer inside double quotation marks.",
        "Wrap the whole reply in double quotes.",
        'Enclose everything you write in a pair of double quotation marks (").',
    ],
    "json": [
        "Return the whole answer as JSON; markdown code fences are fine.",
        "Format your entire output as valid JSON.",
        "Give the reply in JSON format only.",
    ],
    "postscript": [
        "End with a postscript; begin it with {m}",
        "After the main text, add a postscript beginning with {m}",
        "Please add a note at the end that starts with {m}",
    ],
    "bullets": [
        "Use exactly {n} bullet points in markdown, like:\n* first point\n* second point",
        "Answer as a markdown list of exactly {n} bullet points, each starting with * .",
        "Give exactly {n} points, each on its own line starting with an asterisk (*).",
    ],
    "paragraphs": [
        "Split your answer into {n} paragraphs, separated from each other by the markdown divider ***.",
        "Write {n} paragraphs and put *** on its own line between them.",
    ],
    "sections": [
        "Organize the answer in {n} sections, and begin each one with {s} X (X = its number).",
        "Use {n} parts, each headed {s} 1, {s} 2 and so on.",
    ],
    "highlights": [
        "Mark at least {n} parts of your answer as highlighted with markdown, for example *a highlighted part*.",
        "Highlight {n} or more phrases using single asterisks, like *this*.",
        "Emphasize {n} or more passages with markdown, for instance *an important part*.",
        "Put at least {n} key words or phrases in italics with markdown asterisks (*like so*).",
    ],
    "placeholders": [
        "Include at least {n} placeholders written in square brackets, such as [name].",
        "Leave {n} or more blanks for me to fill in, in square brackets like [date].",
    ],
    "keywords": [
        "Make sure the words {ws} appear in your answer.",
        "Mention {ws} somewhere in the reply.",
        "Your reply has to use the words {ws}.",
        "Work these keywords into the text: {ws}.",
        "Be sure your response contains {ws}.",
        "Include the keywords {ws}.",
        "Please include the words {ws} in what you write.",
        "The reply should contain the keywords {ws}.",
        "Use {ws} in your answer.",
    ],
    "frequency": [
        "Use the word {w} at least {n} times.",
        "The word {w} should show up {n} or more times in the reply.",
        "Write {w} no fewer than {n} times.",
        "Mention {w} at least {n} times.",
        "Make the word {w} appear {n} times or more.",
    ],
    "frequency_few": [
        "Use the word {w} fewer than {n} times.",
        "The word {w} may appear less than {n} times, if at all.",
    ],
    "constrained": [
        "Start your reply with exactly one of these options: {o}",
        "Pick one of the following and write it first, word for word: {o}",
        "Begin by choosing one answer from this list, copied exactly: {o}",
    ],
    "forbidden": [
        "Avoid these words: {w}.",
        "Do not use the words {w} anywhere in the reply.",
        "Never write the words {w}.",
        "Do not include the keywords {w}.",
        "Please do not include the words {w} in your answer.",
        "Make sure {w} do not appear in the reply.",
        "Your answer must not contain {w}.",
    ],
    "few_words": ["Keep it under {n} words.", "Use fewer than {n} words.", "Answer in less than {n} words."],
    "many_words": ["Write at least {n} words.", "Your reply needs {n} words or more.", "Use no fewer than {n} words."],
    "few_sentences": ["Use fewer than {n} sentences.", "Keep the reply shorter than {n} sentences."],
    "repeat": [
        "First, copy my request above word for word, then give your reply (do not copy this sentence).",
        "Before answering, repeat the request exactly as I wrote it (without this sentence), then answer it.",
        "Begin by restating my request letter for letter, with nothing in front of it, and leave out this sentence;"
        " after that, answer.",
        "Echo the request back to me exactly, all of it but this instruction, and only then reply to it.",
        "Start your reply by copying everything I wrote above, unchanged, and then answer.",
        "Repeat all of the text above exactly as written before you write anything else, then respond.",
    ],
    "repeat_below": [
        "Copy the request below word for word before you answer it, and do not copy this sentence.",
        "Your reply must open with the following request, repeated exactly; then answer it.",
        "Repeat my request below without changing a single word, then give your reply. Write nothing before it.",
        "Start by echoing the next request exactly as it is written (not this line), then respond to it.",
    ],
    "two": [
        "Give two different answers, and put six asterisks (******) between them.",
        "Write two separate replies, divided by a line of six asterisks: ******",
    ],
    "letters": [
        "The letter {c} should appear {r} {n} times in your reply.",
        "Make the letter {c} occur {r} {n} times.",
    ],
    "caps_few": [
        "Use fewer than {n} words written fully in capital letters.",
        "At most a few words may be in all capitals: fewer than {n} of them.",
    ],
    "first_word": [
        'Write exactly {n} paragraphs separated by blank lines; paragraph {i} must begin with the word "{w}".',
        'Use {n} paragraphs with an empty line between them, and start paragraph number {i} with "{w}".',
    ],
}
