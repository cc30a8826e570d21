"""Tutorial organisms: a task of your own, registered under a name (see docs/organisms.md).

Run one through every command with ``mesa --import examples.pointer ...`` from the repository
root (``mesa --import`` searches the working directory first).
"""
