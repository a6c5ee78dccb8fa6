"""Tools the models may call: what a tool is and how calls are run (`toolbox`), and the
built-in ones (`builtin`). Import from the modules."""

__all__: list[str] = []
