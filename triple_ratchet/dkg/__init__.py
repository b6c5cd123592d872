"""Distributed key generation: edwards25519 group arithmetic and COCKTAIL-DKG.

The DKG's ciphersuite is fixed to COCKTAIL(Ed25519, SHA-512) in every protocol suite.
"""
