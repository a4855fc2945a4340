"""Korean sample triplets shipped with the package for the offline demo."""
