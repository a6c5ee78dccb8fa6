"""Knowledge bases: documents read (`documents`) and cut into passages (`chunks`), stored with
their embeddings (`store`, `embed`, `minilm`) and keyword index (`keywords`), searched by both
(`retrieval`), and a robot's bases managed as one library (`library`). Import from the modules."""

__all__: list[str] = []
