"""Human review of the Function App's review band: what waits (:mod:`.items`), a person's decision recorded exactly
once and the image moved (:mod:`.decisions`), reviewed images back into training (:mod:`.manifest`), and what the
reviews say about the thresholds (:mod:`.stats`). The page (``cvops review serve``) is built on these."""
