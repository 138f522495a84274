"""Run in a project image's build (caffebox/project.py): every distribution the image has,
pinned, as pip constraints, so a project's pip installs replace none of them."""

import importlib.metadata as m

names = {}
for d in m.distributions():
    name = (d.metadata["Name"] or "").strip()
    if name and name.lower() not in names:
        names[name.lower()] = f"{name}=={d.version}"
print("\n".join(sorted(names.values())))
