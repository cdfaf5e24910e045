"""The shipped model bundles (installed as package data of ``daemon``)."""
