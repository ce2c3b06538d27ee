"""transformers' ModelTesterMixin applied to depth-anything-hf's DepthAnythingForDepthEstimation.

Not a test module of this repository: `run_model_tester_mixin.py` copies it into a transformers source tree as
`tests/models/depth_anything_hf/test_depth_anything_hf.py`, where the relative import below resolves. It mirrors
transformers' own tests/models/depth_anything/test_modeling_depth_anything.py: a tester of the same size (8 wide,
2 blocks, 2 heads; our config needs one reassemble factor per neck stage and patch 14) and the same skips, except that
the training tests run when DEPTH_ANYTHING_HF_TRAINING=1 (our model takes depth `labels`; the built-in one does not).
"""

import os
import unittest

import torch
from transformers import Dinov2Config
from transformers.testing_utils import torch_device

from modeling_depth_anything import DepthAnythingConfig, DepthAnythingForDepthEstimation

from ...test_modeling_common import ModelTesterMixin, floats_tensor

RUN_TRAINING = os.environ.get("DEPTH_ANYTHING_HF_TRAINING") == "1"
SKIP_TRAINING = "skipped as in transformers' test of its built-in Depth Anything (set DEPTH_ANYTHING_HF_TRAINING=1)"


class DepthAnythingHfModelTester:
    def __init__(self, parent, batch_size=2, image_size=28, patch_size=14, hidden_size=8, num_hidden_layers=2,
                 num_attention_heads=2, is_training=True):
        self.parent = parent
        self.batch_size = batch_size
        self.num_channels = 3
        self.image_size = image_size
        self.patch_size = patch_size
        self.hidden_size = hidden_size
        self.num_hidden_layers = num_hidden_layers
        self.num_attention_heads = num_attention_heads
        self.is_training = is_training
        self.seq_length = (image_size // patch_size) ** 2 + 1  # patches + CLS

    def get_config(self):
        backbone = Dinov2Config(image_size=self.image_size, patch_size=self.patch_size, hidden_size=self.hidden_size,
                                num_hidden_layers=self.num_hidden_layers, num_attention_heads=self.num_attention_heads,
                                intermediate_size=16, out_indices=[1, 2], reshape_hidden_states=False,
                                apply_layernorm=True, layerscale_value=1.0)
        return DepthAnythingConfig(backbone_config=backbone, reassemble_hidden_size=self.hidden_size,
                                   patch_size=self.patch_size, neck_hidden_sizes=[4, 8], reassemble_factors=[2, 1],
                                   fusion_hidden_size=6, head_hidden_size=4)

    def prepare_config_and_inputs(self):
        pixel_values = floats_tensor([self.batch_size, self.num_channels, self.image_size, self.image_size])
        return self.get_config(), pixel_values

    def prepare_config_and_inputs_for_common(self):
        config, pixel_values = self.prepare_config_and_inputs()
        return config, {"pixel_values": pixel_values}


class DepthAnythingHfModelTest(ModelTesterMixin, unittest.TestCase):
    all_model_classes = (DepthAnythingForDepthEstimation,)
    test_pruning = False
    test_resize_embeddings = False
    test_head_masking = False

    def setUp(self):
        self.model_tester = DepthAnythingHfModelTester(self)

    def _prepare_for_class(self, inputs_dict, model_class, return_labels=False):
        inputs_dict = super()._prepare_for_class(inputs_dict, model_class, return_labels=return_labels)
        if return_labels:  # depth labels, the same on every call (the mixin compares runs)
            tester = self.model_tester
            generator = torch.Generator().manual_seed(0)
            shape = (tester.batch_size, tester.image_size, tester.image_size)
            inputs_dict["labels"] = torch.rand(shape, generator=generator).to(torch_device)
        return inputs_dict

    def test_for_depth_estimation(self):
        config, pixel_values = self.model_tester.prepare_config_and_inputs()
        model = DepthAnythingForDepthEstimation(config).to(torch_device).eval()
        depth = model(pixel_values).predicted_depth
        tester = self.model_tester
        self.assertEqual(depth.shape, (tester.batch_size, tester.image_size, tester.image_size))

    @unittest.skip(reason="no base model and hence no input_embeddings (as the built-in test)")
    def test_inputs_embeds(self):
        pass

    @unittest.skip(reason="no base model and hence no input_embeddings (as the built-in test)")
    def test_model_get_set_embeddings(self):
        pass

    @unittest.skipUnless(RUN_TRAINING, SKIP_TRAINING)
    def test_training(self):
        super().test_training()

    @unittest.skipUnless(RUN_TRAINING, SKIP_TRAINING)
    def test_training_gradient_checkpointing(self):
        super().test_training_gradient_checkpointing()

    @unittest.skipUnless(RUN_TRAINING, SKIP_TRAINING)
    def test_training_gradient_checkpointing_use_reentrant_false(self):
        super().test_training_gradient_checkpointing_use_reentrant_false()

    @unittest.skipUnless(RUN_TRAINING, SKIP_TRAINING)
    def test_training_gradient_checkpointing_use_reentrant_true(self):
        super().test_training_gradient_checkpointing_use_reentrant_true()
