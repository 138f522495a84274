"""Reading a rendered Makefile.config back: NAME := VALUE lines."""


def settings_of(text: str) -> dict[str, str]:
    out = {}
    for line in text.splitlines():
        if ":=" in line and not line.lstrip().startswith("#"):
            key, _, value = line.partition(":=")
            out[key.strip()] = value.strip()
    return out
