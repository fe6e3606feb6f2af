"""A stand-in for a vendored third-party package."""


def greet(name):
    return "hello from " + name
