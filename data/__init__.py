"""Sample quote files for the replay pipeline and the generator that writes them."""
