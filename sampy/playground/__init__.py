"""The playground: the explorers of SAM and its variants, one module per concern.

- ``choices``: the method menu (from the registry), which knobs, which functions (no widgets);
- ``compute``: every computation of the laboratory as plain functions on plain data (runs
  with their ascent points, overlays, anatomy, sharpness, basin maps, exports);
- ``pictures``: the reusable matplotlib figures (blitting) that turn results into PNG bytes;
- ``clicks``: a click on the picture → a start point (ipyevents, or a grid of buttons);
- ``controls``: the widgets generated from the registry (knobs, variant slots);
- ``app``: the laboratory widget ``Playground``;

``sampy.widgets`` re-exports the public names; import from there.
"""
