"""Models: the `ChatModel` interface (`base`), the provider table (`registry`), the providers
under the names of the APIs they speak (`providers`), building one from a profile (`build`),
the failover chain the engine asks (`chain`), and offline token counting (`tokens`).
Import from the modules."""

__all__: list[str] = []
