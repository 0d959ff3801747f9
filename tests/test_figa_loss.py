"""The FIGA loss against a hand computation, its gradient direction, and the tau rule."""

import math

import pytest
import torch

from bench.logprobs import token_ce
from figa.loss import figa_loss


def test_token_ce_matches_hand_cross_entropy():
    logits = torch.tensor([[[2.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 0.0]]])
    ids = torch.tensor([[0, 0, 1]])
    ce = token_ce(logits, ids)
    # position 0 predicts ids[1]=0 from logits [2,0,0]; position 1 predicts ids[2]=1 from [0,1,0]
    expected = [-math.log(math.e**2 / (math.e**2 + 2)), -math.log(math.e / (math.e + 2))]
    assert ce.tolist()[0] == pytest.approx(expected, rel=1e-6)


def test_loss_equals_hand_computation():
    ce = torch.tensor([[0.2, 1.5, 0.4], [0.3, 0.9, 0.5]])
    weights = torch.tensor([[1.0, 1.0, 0.0], [-0.5, -0.5, 0.0]])  # alpha on row 0; -beta on row 1
    negative = torch.tensor([[False, False, False], [True, True, False]])
    loss, stats = figa_loss(ce, weights, negative, tau=0.6)
    # the second negative (CE 0.9 > tau) is dropped: three weighted tokens remain
    assert loss.item() == pytest.approx((0.2 + 1.5 - 0.5 * 0.3) / 3)
    assert stats["n_positive"] == 2 and stats["n_negative"] == 2 and stats["n_negative_kept"] == 1
    assert stats["frac_negative_kept"] == pytest.approx(0.5)


def test_gamma_weights_unchanged_tokens_and_counts_them():
    ce = torch.tensor([[1.0, 2.0]])
    weights = torch.tensor([[1.0, 0.25]])  # alpha on an added token, gamma on an unchanged one
    loss, _ = figa_loss(ce, weights, torch.zeros_like(ce, dtype=torch.bool))
    assert loss.item() == pytest.approx((1.0 + 0.5) / 2)


def test_window_rule_keeps_only_negatives_inside_the_window():
    ce = torch.tensor([[0.1, 0.4, 0.7]])
    weights = torch.full((1, 3), -0.5)
    negative = torch.ones(1, 3, dtype=torch.bool)
    _, stats = figa_loss(ce, weights, negative, tau=0.6, tau_min=0.2)
    assert stats["n_negative_kept"] == 1  # only CE 0.4 lies in [0.2, 0.6]


def test_batch_without_edits_gives_zero_not_nan():
    ce = torch.rand(2, 4, requires_grad=True)
    loss, stats = figa_loss(ce, torch.zeros(2, 4), torch.zeros(2, 4, dtype=torch.bool))
    loss.backward()
    assert loss.item() == 0.0 and torch.isfinite(ce.grad).all()
    assert stats["frac_negative_kept"] == 0.0


def test_one_step_raises_positive_and_lowers_kept_negative_probabilities():
    torch.manual_seed(0)
    vocab = 8
    model = torch.nn.Sequential(torch.nn.Embedding(vocab, 16), torch.nn.Linear(16, vocab))
    with torch.no_grad():  # make token 3 after token 1 likely, so its CE is below tau and it is kept
        model[1].bias.zero_()
        model[1].bias[3] = 4.0
    revised = torch.tensor([[1, 5, 2]])   # token 5 was added by the revision
    initial = torch.tensor([[1, 3, 2]])   # token 3 was substituted away
    ids = torch.cat([revised, initial])
    weights = torch.tensor([[0.0, 1.0, 0.0], [0.0, -0.5, 0.0]])
    negative = torch.tensor([[False, False, False], [False, True, False]])

    def probs():
        p = model(ids).softmax(-1)
        return p[0, 0, 5].item(), p[1, 0, 3].item()

    p_pos, p_neg = probs()
    opt = torch.optim.SGD(model.parameters(), lr=0.5)
    ce = token_ce(model(ids), ids)
    loss, stats = figa_loss(ce, weights[:, 1:], negative[:, 1:], tau=0.6)
    assert stats["n_negative_kept"] == 1
    loss.backward()
    opt.step()
    q_pos, q_neg = probs()
    assert q_pos > p_pos and q_neg < p_neg


def test_tau_excludes_unlikely_negatives_from_the_gradient():
    ce = torch.tensor([[0.3, 2.0]], requires_grad=True)
    weights = torch.tensor([[1.0, -0.5]])
    negative = torch.tensor([[False, True]])
    loss, _ = figa_loss(ce, weights, negative, tau=0.6)
    loss.backward()
    assert ce.grad[0, 1].item() == 0.0  # CE 2.0 > tau: the token is already unlikely, no push
    assert ce.grad[0, 0].item() == pytest.approx(1.0)
