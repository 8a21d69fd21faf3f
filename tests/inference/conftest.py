"""A tiny real run (AltzCNN, 32 x 32, a few epochs on 120 real slices) shared by the inference tests."""

import pytest
import torch


@pytest.fixture(autouse=True)
def _one_thread():
    torch.set_num_threads(1)


@pytest.fixture(scope="session")
def tiny_run(small_data, tmp_path_factory):
    from alzmri.config import load_train_config
    from alzmri.training.train import train

    torch.set_num_threads(1)
    out = tmp_path_factory.mktemp("tiny-runs") / "altz32"
    cfg = load_train_config(data=small_data, out=out, epochs=4, batch_size=8, lr=3e-4, image_size=32, augment=False, seed=0,
                            split_strategy="stratified", model_kwargs={"fc_dropout": 0.0, "conv_dropout": 0.0, "init": "he"})
    return train(cfg, progress=False)
