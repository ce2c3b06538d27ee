"""Depth Anything demo as a Hugging Face Space (Gradio SDK): `python app.py`.

The Space's README front matter says `sdk: gradio` and `app_file: app.py`. The model comes from the Space variable
`DEPTH_ANYTHING_MODEL` (a Hub id or folder; several separated by commas), default
`depth-anything/Depth-Anything-V2-Small-hf`. The Space sets `GRADIO_SERVER_NAME`/`GRADIO_SERVER_PORT`; locally this
serves on 127.0.0.1:7860 (or use `depth-anything demo --model DIR_OR_HUB_ID [--model ANOTHER] [--port N]`).
The page and its handlers live in `modeling_depth_anything/demo.py`.
"""

import logging
import os

from modeling_depth_anything.demo import DEFAULT_PORT, launch_demo, models_from_env

if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    launch_demo(
        models_from_env(),
        host=os.environ.get("GRADIO_SERVER_NAME", "127.0.0.1"),
        port=int(os.environ.get("GRADIO_SERVER_PORT", DEFAULT_PORT)),
    )
