"""``czbuild init``: new projects, and a first recipe inferred from a trained model.

* :mod:`czbuild.scaffold.probe`: run a model on seeded images and measure what a recipe
  needs (layout, channels, head, down-sampling factor, receptive field).
* :mod:`czbuild.scaffold.recipe_text`: the recipe YAML, every guess commented.
* :mod:`czbuild.scaffold.project`: plan and write the project, all or nothing.

The submodules are imported on use (the model probe loads frameworks lazily).
"""
