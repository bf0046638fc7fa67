"""Recipes: the commands that see every layer (files in and out, checkpoint folders, every component).

``omnitok generate`` is :mod:`omnitok.recipes.generate`; the other commands live beside their component and are
listed in ``cli.py``'s ``COMMANDS`` table.
"""
