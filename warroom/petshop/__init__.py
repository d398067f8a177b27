"""`warroom eval petshop`: the PetShop root-cause benchmark through the real pipeline (SPEC §14)."""
