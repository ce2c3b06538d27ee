"""A picture grid of procedural synthetic training scenes, each with its exact depth beside it.

    python train/synthetic_grid.py --grid docs/synthetic_grid.png [--rows 4 --cols 4 --size 160 --seed 0]
"""

from modeling_depth_anything.data.synthetic import main

if __name__ == "__main__":
    main()
