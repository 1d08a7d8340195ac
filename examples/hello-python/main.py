"""The smallest useful function: greets the caller by name."""


def handler(event, context):
    name = event.get("name") if isinstance(event, dict) else None
    if not isinstance(name, str):
        name = "world"
    return {"message": f"hello, {name}"}
