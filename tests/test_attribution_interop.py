"""Attribution of real SpikingJelly, snnTorch and plain-PyTorch spiking networks (installed with the test extra)."""
import numpy as np
import pytest
import torch
from torch import nn

import snn_zoo
from test_attribution import direct_gradcam
from spikescope.attribution import attribute
from spikescope.captum_adapter import SpikingFunction, repeat_over_time
from spikescope.data import load_dataset, make_loader
from spikescope.detect import reset_neuron_states
from spikescope.errors import SpikescopeError

pytest.importorskip("spikingjelly.activation_based.neuron", reason="test extra: pip install --no-deps spikingjelly")
snn = pytest.importorskip("snntorch", reason="test extra: pip install --no-deps snntorch")
from spikingjelly.activation_based import functional, layer, neuron  # noqa: E402

T = 4
IMAGES = next(iter(make_loader(load_dataset("fashion-mnist-sample", "test", limit=8), 8)))[0]


def spikingjelly_net() -> nn.Module:
    torch.manual_seed(0)
    net = nn.Sequential(
        layer.Conv2d(1, 6, 3, padding=1), layer.BatchNorm2d(6), neuron.LIFNode(tau=2.0, v_threshold=0.2),
        layer.MaxPool2d(2),
        layer.Conv2d(6, 8, 3, padding=1), layer.BatchNorm2d(8), neuron.LIFNode(tau=2.0, v_threshold=0.2),
        layer.Flatten(), layer.Linear(8 * 14 * 14, 10),
    ).eval()
    functional.set_step_mode(net, "m")
    return net


class SnnTorchLoop(nn.Module):
    """The snnTorch tutorial pattern: neurons called once per step inside the model's loop; spike-count logits."""

    def __init__(self, init_hidden: bool = False) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.init_hidden = init_hidden
        self.conv = nn.Conv2d(1, 6, 3, padding=1)
        self.lif1 = snn.Leaky(beta=0.8, init_hidden=init_hidden)
        self.fc = nn.Linear(6 * 28 * 28, 10)
        self.lif2 = snn.Leaky(beta=0.8, init_hidden=init_hidden, output=init_hidden)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        mem1 = mem2 = None if self.init_hidden else (self.lif1.init_leaky(), self.lif2.init_leaky())
        if not self.init_hidden:
            mem1, mem2 = mem1
        counts = 0
        for _ in range(T):
            if self.init_hidden:
                spk1 = self.lif1(self.conv(x) * 3)
                spk2, _ = self.lif2(self.fc(spk1.flatten(1)))
            else:
                spk1, mem1 = self.lif1(self.conv(x) * 3, mem1)
                spk2, mem2 = self.lif2(self.fc(spk1.flatten(1)), mem2)
            counts = counts + spk2
        return counts


def test_spikingjelly_logits_through_the_adapter_equal_the_models_call_after_call():
    net = spikingjelly_net()
    function = SpikingFunction(net, T, time_first_input=True)
    first, second = IMAGES[:4], IMAGES[4:]

    def direct(x):
        functional.reset_net(net)
        return net(repeat_over_time(x, T).transpose(0, 1)).mean(0)

    expected = direct(first)
    with torch.no_grad():
        stale = net(repeat_over_time(first, T).transpose(0, 1)).mean(0)  # state left from the call before
        assert not torch.equal(stale, expected)  # so the comparison below can fail
        for x in (first, second, first, first):
            torch.testing.assert_close(function(repeat_over_time(x, T)), direct(x), rtol=0, atol=0)


def test_snntorch_state_kept_in_the_modules_is_reset_before_every_call():
    net = SnnTorchLoop(init_hidden=True).eval()
    function = SpikingFunction(net, T)
    with torch.no_grad():
        reference = function(IMAGES).clone()
        after_other = (function(IMAGES[:3]), function(IMAGES))[1]
        assert not torch.equal(net(IMAGES), reference)  # without a reset the hidden state carries over
    torch.testing.assert_close(after_other, reference, rtol=0, atol=0)


@pytest.mark.parametrize("method", ["saliency", "ig", "occlusion", "gradcam", "layer-ig", "sam"])
def test_spikingjelly_multi_step_network_in_eval_mode(method):
    net = spikingjelly_net()
    result = attribute(net, IMAGES, method, T=T, time_first_input=True, n_steps=8)
    assert np.isfinite(result.maps).all() and np.abs(result.maps).sum() > 0
    assert result.maps.shape[:2] == (8, T) and result.per_timestep
    assert set(result.sam) == {"2", "6"} and result.sam["6"].shape == (8, T, 14, 14)
    assert not any(m.training for m in net.modules())


def test_snntorch_gradcam_per_call_equals_a_direct_computation():
    net = SnnTorchLoop().eval()
    calls = []
    handle = net.lif1.register_forward_hook(lambda module, args, output: calls.append(output[0]))
    with torch.enable_grad():
        logits = net(IMAGES)
    handle.remove()
    target = logits.argmax(1)
    gradients = torch.autograd.grad(logits.gather(1, target[:, None]).sum(), calls)
    expected = torch.stack([torch.relu((g.mean(dim=(2, 3), keepdim=True) * a).sum(dim=1))
                            for g, a in zip(gradients, calls)], dim=1)  # [B, T, H, W]
    assert expected.abs().sum() > 0
    result = attribute(net, IMAGES, "gradcam", layer="lif1", T=T)
    assert result.maps.shape == (8, T, 28, 28)
    np.testing.assert_allclose(result.maps, expected.detach().numpy(), rtol=1e-4, atol=1e-6)
    saliency = attribute(net, IMAGES, "saliency", T=T)
    assert saliency.maps.shape == (8, 1, 1, 28, 28) and np.abs(saliency.maps).sum() > 0


def test_neurons_without_a_surrogate_gradient_are_named_and_gradient_free_methods_still_work():
    net = snn_zoo.PlainSNN().eval()  # reference-style neurons: a hard threshold, no surrogate
    for method, name in (("saliency", None), ("ig", None), ("gradcam", "stage1.1")):
        with pytest.raises(SpikescopeError, match=r"no gradient flows back from the logits \(neurons that no framework "
                                                  r"declares \(stage1.1, stage2.1\) may have no surrogate gradient\): "
                                                  "use occlusion or sam"):
            attribute(net, IMAGES, method, layer=name, T=3, n_steps=4)
    for method in ("occlusion", "sam", "gradcam"):  # Grad-CAM of the last spiking layer needs no neuron's gradient
        result = attribute(net, IMAGES, method, T=3)
        assert np.abs(result.maps).sum() > 0 and result.maps.shape[0] == 8


def test_sinabs_batch_major_fold_gradcam_equals_a_direct_computation():
    sl = pytest.importorskip("sinabs.layers", reason="test extra: pip install --no-deps sinabs nir nirtorch pbr h5py")
    from sinabs.activation import SingleSpike

    class Squeezed(nn.Module):
        """Time-first images in, sinabs' batch-major fold inside, spike-count logits out."""

        def __init__(self) -> None:
            super().__init__()
            torch.manual_seed(0)
            self.T = T
            self.conv1, self.conv2 = nn.Conv2d(1, 4, 3, padding=1), nn.Conv2d(4, 4, 3, padding=1)
            self.iaf1 = sl.IAFSqueeze(num_timesteps=T, spike_fn=SingleSpike)
            self.iaf2 = sl.IAFSqueeze(num_timesteps=T, spike_fn=SingleSpike)
            self.head = nn.Linear(4 * 28 * 28, 10)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            folded = (x.unsqueeze(1).expand(len(x), T, *x.shape[1:]) * 2).flatten(0, 1)  # [B*T, C, H, W]
            spikes = self.iaf2(self.conv2(self.iaf1(self.conv1(folded))))
            return self.head(spikes.flatten(1)).unflatten(0, (len(x), T)).sum(dim=1)

    net = Squeezed().eval()
    reset_neuron_states(net)
    expected = direct_gradcam(net, net.iaf1, IMAGES, lambda x: x.unflatten(0, (-1, T)).transpose(0, 1))
    result = attribute(net, IMAGES, "gradcam", layer="iaf1", T=T)
    assert result.maps.shape == (8, T, 28, 28)
    np.testing.assert_allclose(result.maps, expected.numpy(), rtol=1e-4, atol=1e-6)
    assert np.abs(attribute(net, IMAGES, "ig", T=T, n_steps=4).maps).sum() > 0


def test_a_neuron_that_drops_its_surrogate_in_eval_still_gets_gradients():
    """SpikingJelly's CLIF neuron fires through a plain Heaviside step in eval(); attribution runs it in train mode
    (the same spikes) while the rest of the network stays in eval()."""
    from spikingjelly.activation_based.neuron import ComplementaryLIFNode

    torch.manual_seed(0)
    net = nn.Sequential(layer.Conv2d(1, 6, 3, padding=1), layer.BatchNorm2d(6), ComplementaryLIFNode(v_threshold=0.2),
                        layer.Flatten(), layer.Linear(6 * 28 * 28, 10)).eval()
    functional.set_step_mode(net, "m")
    image = repeat_over_time(IMAGES, T).transpose(0, 1).requires_grad_()
    functional.reset_net(net)
    with pytest.raises(RuntimeError, match="does not require grad|not have been used"):
        torch.autograd.grad(net(image).sum(), image)  # eval() alone: no gradient reaches the input
    result = attribute(net, IMAGES, "saliency", T=T, time_first_input=True)
    assert np.abs(result.maps).sum() > 0 and not any(m.training for m in net.modules())
