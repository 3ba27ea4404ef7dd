"""Device names: what every command accepts for --device, and the one message for the rest."""

import pytest
import torch

from tqpinn.devices import check_device
from tqpinn.errors import UserError


@pytest.mark.parametrize("name", ["cpu", "cpu:0"])
def test_cpu_names_are_accepted(name):
    assert check_device(name) == name


@pytest.mark.parametrize("name", ["tpu", "", "gpu", "cuda:x"])
def test_unknown_devices_name_the_choices(name):
    with pytest.raises(UserError, match="must be 'cpu' or 'cuda'"):
        check_device(name)


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a GPU")
@pytest.mark.parametrize("name", ["cuda", "cuda:1"])
def test_cuda_without_a_gpu_is_a_user_error(name):
    with pytest.raises(UserError, match="no CUDA device is available"):
        check_device(name)
