"""Test helper shared by the systemd and worker-unit tests."""


def unquote_like_systemd(line):
    """A reference reader of systemd's Exec syntax for the subset systemd_quote writes
    (extract_first_word with EXTRACT_UNQUOTE|EXTRACT_CUNESCAPE, then %% and $$)."""
    simple = {"n": "\n", "t": "\t", "r": "\r", "a": "\a", "b": "\b", "f": "\f", "v": "\v", "\\": "\\", '"': '"'}
    words, index = [], 0
    while index < len(line):
        if line[index] == " ":
            index += 1
            continue
        word, quoted = [], False
        while index < len(line) and (quoted or line[index] != " "):
            char = line[index]
            if char == '"':
                quoted = not quoted
            elif char == "\\":
                if line[index + 1] == "x":
                    word.append(chr(int(line[index + 2:index + 4], 16)))
                    index += 2
                else:
                    word.append(simple[line[index + 1]])
                index += 1
            else:
                word.append(char)
            index += 1
        words.append("".join(word).replace("%%", "%").replace("$$", "$"))
    return words
