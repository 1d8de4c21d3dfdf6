"""Native chords: the engine, the root counter, the tree, its geometry, the firing part."""
