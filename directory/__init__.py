"""The reference directory: agencies, operators and their keys, categories, purposes, holdings, relationships.

It says which agency holds what about whom and who may ask; it never holds a record itself.
"""
