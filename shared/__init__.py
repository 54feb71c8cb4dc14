"""The tracker library every function imports: model, schemas, store, operations, HTTP helpers."""
