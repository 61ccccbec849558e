"""Opens the store named by STORE (each module imports only its own library)."""


def open_store(settings):
    if settings.store == "dynamodb":
        from .dynamodb import DynamoStore
        return DynamoStore(settings)
    if settings.store == "mongodb":
        from .mongodb import MongoStore
        return MongoStore(settings)
    from .cassandra import CassandraStore
    return CassandraStore(settings)
