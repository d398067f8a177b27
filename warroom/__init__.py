"""warroom"""
