"""The model zoo: real architectures from transformers, torchvision and timm, each built with
random weights from a tiny configuration (no download), with a batch maker and a loss, for the
zoo's parity sweep and timings (`zoo.py`) and its slow test (tests/test_zoo.py).

Every entry builds its model seeded (`ZooModel.make()`), in training mode, wrapped so that
`forward(*batch)` returns the scalar loss. Dropout is off: every dropout probability of the
configuration (and stochastic depth, layer drop) is 0, and SpecAugment-style masking too, so a
step is deterministic. The "+dropout" variants set those probabilities to 0.1 instead (or the
library's own default where noted); the trainer reseeds torch's global RNG before each step
of each copy, so eager and a compiled copy draw from the same stream.

Sizes: a few layers, hidden sizes of 16 to 64, a vocabulary of 96, sequences of 16 tokens,
images of 32 or 64 px; a few torchvision and timm models are the library's standard
architecture as it is (resnet18, mobilenet_v3_small, ...), already small at 32 px.
A family whose library does not import is skipped with the reason (`ZooModel.missing()`).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

VOCAB = 96
TOKENS = 16  # sequence length
DROPOUT = 0.1  # the probability of the variants with dropout on

FAMILIES = ("transformers", "torchvision", "timm")
# timm builds on torchvision: both must import
REQUIRES = {"transformers": ("transformers",), "torchvision": ("torchvision",)}
REQUIRES["timm"] = ("torchvision", "timm")


@dataclass(frozen=True)
class ZooModel:
    name: str
    family: str
    build: Callable[[bool], nn.Module]  # (dropout) -> the model, forward(*batch) -> loss
    batch: Callable[[torch.Generator], tuple]  # a batch drawn from the generator
    config: str  # the tiny configuration, in words
    dropout: bool = False  # the variant with dropout on
    requires: tuple[str, ...] = field(default=())

    def make(self, seed: int = 0) -> nn.Module:
        """The model, its weights drawn from `torch.manual_seed(seed)`, in training mode."""
        torch.manual_seed(seed)
        return self.build(self.dropout).train()

    def missing(self) -> str | None:
        """Why this entry cannot run here (a library that does not import), else None."""
        for module in self.requires:
            try:
                importlib.import_module(module)
            except Exception as e:  # noqa: BLE001 (a broken install is a reason too)
                first = str(e).strip().splitlines()[0] if str(e).strip() else ""
                return f"{module} does not import with torch {torch.__version__}: " + (
                    f"{type(e).__name__}: {first}"
                )
        return None


# ---- batches ---------------------------------------------------------------------------------


def tokens(batch=2, length=TOKENS, vocab=VOCAB):
    def make(generator):
        ids = torch.randint(0, vocab, (batch, length), generator=generator)
        return ids, ids.clone()  # labels: the inputs (a causal LM shifts them itself)

    return make


def seq2seq(batch=2, length=TOKENS, target=8, vocab=VOCAB):
    def make(generator):
        ids = torch.randint(3, vocab, (batch, length), generator=generator)
        return ids, torch.randint(3, vocab, (batch, target), generator=generator)

    return make


def images(size=32, classes=10, batch=4, channels=3):
    def make(generator):
        x = torch.randn(batch, channels, size, size, generator=generator)
        return x, torch.randint(0, classes, (batch,), generator=generator)

    return make


def segmentation(size=64, classes=4, batch=2):
    def make(generator):
        x = torch.randn(batch, 3, size, size, generator=generator)
        return x, torch.randint(0, classes, (batch, size, size), generator=generator)

    return make


def token_labels(batch=2, length=TOKENS, vocab=VOCAB):
    """Tokens and a 0/1 label per token (ELECTRA's replaced-token detection)."""

    def make(generator):
        ids = torch.randint(0, vocab, (batch, length), generator=generator)
        return ids, torch.randint(0, 2, (batch, length), generator=generator)

    return make


def audio_features(batch=2, mel=16, frames=32, target=8, vocab=VOCAB):
    def make(generator):
        features = torch.randn(batch, mel, frames, generator=generator)
        return features, torch.randint(3, vocab, (batch, target), generator=generator)

    return make


def waveform(batch=2, samples=400, classes=4):
    def make(generator):
        audio = torch.randn(batch, samples, generator=generator)
        return audio, torch.randint(0, classes, (batch,), generator=generator)

    return make


def text_image(batch=2, length=8, size=32, vocab=VOCAB):
    def make(generator):
        ids = torch.randint(0, vocab, (batch, length), generator=generator)
        return ids, torch.randn(batch, 3, size, size, generator=generator)

    return make


# ---- losses ----------------------------------------------------------------------------------


class HFLoss(nn.Module):
    """A transformers model called with the batch as keyword arguments; its own `.loss`."""

    def __init__(self, model, names, **extra):
        super().__init__()
        self.model, self.names, self.extra = model, tuple(names), extra

    def forward(self, *batch):
        return self.model(**dict(zip(self.names, batch)), **self.extra).loss


class ClassifierLoss(nn.Module):
    """Cross-entropy of the model's logits (torchvision and timm classifiers)."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, images, labels):
        return F.cross_entropy(self.model(images), labels)


class SegmentationLoss(nn.Module):
    """Per-pixel cross-entropy of torchvision's segmentation output `["out"]`."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, images, masks):
        return F.cross_entropy(self.model(images)["out"], masks)


# ---- transformers ----------------------------------------------------------------------------


def _set_dropout(config, dropout: bool):
    """Every float option naming a drop (hidden_dropout_prob, attention_dropout, resid_pdrop,
    layerdrop, drop_path_rate, ...) of the config and its sub-configs: 0, or DROPOUT."""
    value = DROPOUT if dropout else 0.0
    for key, old in list(vars(config).items()):
        if "drop" in key and isinstance(old, float):
            setattr(config, key, value)
        elif hasattr(old, "to_dict") and hasattr(old, "model_type"):  # a sub-config
            _set_dropout(old, dropout)
    return config


def hf(model_class: str, config_class: str, names=("input_ids", "labels"), extra=None, **config):
    """A builder of transformers' `model_class` from `config_class(**config)`, dropout set."""

    def build(dropout: bool) -> nn.Module:
        import transformers

        cfg = getattr(transformers, config_class)(**config)
        _set_dropout(cfg, dropout)
        model = getattr(transformers, model_class)(cfg)
        return HFLoss(model, names, **(extra or {}))

    return build


# decoder-only language models share one shape: 2 layers, hidden 32, 4 heads
_LM = dict(vocab_size=VOCAB, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
           num_attention_heads=4, max_position_embeddings=64)  # fmt: skip
_GQA = dict(_LM, num_key_value_heads=2)
_ENCODER = dict(_LM, type_vocab_size=2)
_IMAGE = ("pixel_values", "labels")
_LM_WORDS = "2 layers, hidden 32, 4 heads, vocab 96, 16 tokens"


def _transformers() -> list[ZooModel]:
    t = "transformers"
    causal = lambda name, model, config, words=_LM_WORDS, **kw: ZooModel(
        name, t, hf(model, config, **kw), tokens(), words
    )
    masked = causal  # the labels are the inputs too; the model does not shift them
    return [
        masked("BERT", "BertForMaskedLM", "BertConfig", **_ENCODER),
        causal("GPT-2", "GPT2LMHeadModel", "GPT2Config",
               vocab_size=VOCAB, n_embd=32, n_layer=2, n_head=4, n_positions=64,
               bos_token_id=0, eos_token_id=0),
        ZooModel("T5", t, hf("T5ForConditionalGeneration", "T5Config",
                             vocab_size=VOCAB, d_model=32, d_kv=8, d_ff=64, num_layers=2,
                             num_decoder_layers=2, num_heads=4,
                             relative_attention_num_buckets=8, decoder_start_token_id=0,
                             pad_token_id=0),
                 seq2seq(), "2+2 layers, d_model 32, 4 heads, 16 -> 8 tokens"),
        causal("Llama", "LlamaForCausalLM", "LlamaConfig", _LM_WORDS + ", 2 KV heads", **_GQA),
        causal("Mistral", "MistralForCausalLM", "MistralConfig",
               _LM_WORDS + ", 2 KV heads, sliding window 8", sliding_window=8, **_GQA),
        causal("Qwen2", "Qwen2ForCausalLM", "Qwen2Config", _LM_WORDS + ", 2 KV heads", **_GQA),
        causal("Qwen3", "Qwen3ForCausalLM", "Qwen3Config",
               _LM_WORDS + ", 2 KV heads, head_dim 8", head_dim=8, **_GQA),
        causal("Gemma", "GemmaForCausalLM", "GemmaConfig",
               _LM_WORDS + ", 2 KV heads, head_dim 8", head_dim=8, **_GQA),
        causal("Gemma2", "Gemma2ForCausalLM", "Gemma2Config",
               _LM_WORDS + ", head_dim 8, sliding window 8, soft-capping",
               head_dim=8, sliding_window=8, **_GQA),
        causal("Mixtral", "MixtralForCausalLM", "MixtralConfig",
               _LM_WORDS + ", 4 experts, top 2", num_local_experts=4,
               num_experts_per_tok=2, **_GQA),
        causal("Phi", "PhiForCausalLM", "PhiConfig", _LM_WORDS + ", partial rotary", **_LM),
        causal("GPT-NeoX", "GPTNeoXForCausalLM", "GPTNeoXConfig",
               _LM_WORDS + ", rotary 25%", rotary_pct=0.25, **_LM),
        causal("GPT-Neo", "GPTNeoForCausalLM", "GPTNeoConfig",
               _LM_WORDS + ", global + local attention (window 8)",
               vocab_size=VOCAB, hidden_size=32, num_layers=2, num_heads=4,
               intermediate_size=64, max_position_embeddings=64,
               attention_types=[[["global", "local"], 1]], window_size=8),
        causal("OPT", "OPTForCausalLM", "OPTConfig",
               vocab_size=VOCAB, hidden_size=32, num_hidden_layers=2, ffn_dim=64,
               num_attention_heads=4, word_embed_proj_dim=32, max_position_embeddings=64),
        causal("Falcon", "FalconForCausalLM", "FalconConfig",
               vocab_size=VOCAB, hidden_size=32, num_hidden_layers=2, num_attention_heads=4),
        causal("BLOOM", "BloomForCausalLM", "BloomConfig", _LM_WORDS + ", ALiBi",
               vocab_size=VOCAB, hidden_size=32, n_layer=2, n_head=4),
        masked("RoBERTa", "RobertaForMaskedLM", "RobertaConfig", **_ENCODER),
        masked("DistilBERT", "DistilBertForMaskedLM", "DistilBertConfig",
               vocab_size=VOCAB, dim=32, n_layers=2, n_heads=4, hidden_dim=64,
               max_position_embeddings=64),
        masked("ALBERT", "AlbertForMaskedLM", "AlbertConfig", _LM_WORDS + ", embedding 16",
               embedding_size=16, **_ENCODER),
        ZooModel("ELECTRA", t, hf("ElectraForPreTraining", "ElectraConfig",
                                  embedding_size=16, **_ENCODER),
                 token_labels(), _LM_WORDS + ", embedding 16, replaced-token detection"),
        masked("MobileBERT", "MobileBertForMaskedLM", "MobileBertConfig",
               _LM_WORDS + ", embedding 16, bottleneck 16",
               embedding_size=16, intra_bottleneck_size=16, true_hidden_size=16,
               num_feedforward_networks=2, **_ENCODER),
        masked("DeBERTa-v2", "DebertaV2ForMaskedLM", "DebertaV2Config",
               _LM_WORDS + ", relative attention (8 buckets)",
               relative_attention=True, position_buckets=8, pos_att_type=["p2c", "c2p"],
               **_ENCODER),
        ZooModel("BART", t, hf("BartForConditionalGeneration", "BartConfig",
                               vocab_size=VOCAB, d_model=32, encoder_layers=2,
                               decoder_layers=2, encoder_attention_heads=4,
                               decoder_attention_heads=4, encoder_ffn_dim=64,
                               decoder_ffn_dim=64, max_position_embeddings=64),
                 seq2seq(), "2+2 layers, d_model 32, 4 heads, 16 -> 8 tokens"),
        ZooModel("Whisper", t, hf("WhisperForConditionalGeneration", "WhisperConfig",
                                  names=("input_features", "labels"), vocab_size=VOCAB,
                                  num_mel_bins=16, encoder_layers=2, decoder_layers=2,
                                  encoder_attention_heads=4, decoder_attention_heads=4,
                                  encoder_ffn_dim=64, decoder_ffn_dim=64, d_model=32,
                                  max_source_positions=16, max_target_positions=32,
                                  pad_token_id=0, bos_token_id=1, eos_token_id=2,
                                  decoder_start_token_id=1, suppress_tokens=None,
                                  begin_suppress_tokens=None),
                 audio_features(), "2+2 layers, d_model 32, 16 mel bins x 32 frames -> 8 tokens"),
        ZooModel("wav2vec2", t, hf("Wav2Vec2ForSequenceClassification", "Wav2Vec2Config",
                                   names=("input_values", "labels"), hidden_size=32,
                                   num_hidden_layers=2, num_attention_heads=4,
                                   intermediate_size=64, conv_dim=(16, 16),
                                   conv_stride=(5, 2), conv_kernel=(10, 3),
                                   num_conv_pos_embeddings=8, num_conv_pos_embedding_groups=2,
                                   mask_time_prob=0.0, num_labels=4, classifier_proj_size=16),
                 waveform(), "2 conv + 2 layers, hidden 32, 400 samples, 4 classes"),
        ZooModel("CLIP", t, hf("CLIPModel", "CLIPConfig", names=("input_ids", "pixel_values"),
                               extra={"return_loss": True}, projection_dim=16,
                               text_config=dict(vocab_size=VOCAB, hidden_size=32,
                                                intermediate_size=64, num_hidden_layers=2,
                                                num_attention_heads=4,
                                                max_position_embeddings=16,
                                                bos_token_id=0, eos_token_id=2),
                               vision_config=dict(image_size=32, patch_size=8, hidden_size=32,
                                                  intermediate_size=64, num_hidden_layers=2,
                                                  num_attention_heads=4)),
                 text_image(), "text and vision towers of 2 layers, hidden 32; 8 tokens, 32 px"),
        ZooModel("ViT", t, hf("ViTForImageClassification", "ViTConfig", names=_IMAGE,
                              image_size=32, patch_size=8, hidden_size=32, num_hidden_layers=2,
                              num_attention_heads=4, intermediate_size=64, num_labels=10),
                 images(), "2 layers, hidden 32, patch 8, 32 px"),
        ZooModel("Swin", t, hf("SwinForImageClassification", "SwinConfig", names=_IMAGE,
                               image_size=32, patch_size=4, embed_dim=16, depths=[1, 1],
                               num_heads=[2, 4], window_size=4, num_labels=10),
                 images(), "2 stages of 1 block, embed 16, window 4, 32 px"),
        ZooModel("ConvNeXt", t, hf("ConvNextForImageClassification", "ConvNextConfig",
                                   names=_IMAGE, num_stages=2, hidden_sizes=[16, 32],
                                   depths=[1, 1], num_labels=10),
                 images(), "2 stages of 1 block, widths 16-32, 32 px"),
        ZooModel("ResNet", t, hf("ResNetForImageClassification", "ResNetConfig", names=_IMAGE,
                                 embedding_size=16, hidden_sizes=[16, 32], depths=[1, 1],
                                 layer_type="basic", num_labels=10),
                 images(), "2 stages of 1 basic block, widths 16-32, 32 px"),
    ]  # fmt: skip


# ---- torchvision -----------------------------------------------------------------------------


def _drop_off(model: nn.Module, dropout: bool) -> nn.Module:
    """Without dropout: every Dropout and StochasticDepth module left in the model gets p=0
    (those the constructor's arguments did not reach)."""
    if not dropout:
        for module in model.modules():
            if isinstance(module, nn.modules.dropout._DropoutNd) or (
                type(module).__name__ in ("StochasticDepth", "DropPath") and hasattr(module, "p")
            ):
                module.p = 0.0
    return model


def tv(factory: Callable[[bool], nn.Module], head=ClassifierLoss):
    def build(dropout: bool) -> nn.Module:
        return head(_drop_off(factory(dropout), dropout))

    return build


def _tv(name):
    import torchvision.models

    return getattr(torchvision.models, name)


def _tv_tiny(module, cls):
    import torchvision.models

    return getattr(getattr(torchvision.models, module), cls)


def _torchvision() -> list[ZooModel]:
    t = "torchvision"
    p = lambda d, default: default if d else 0.0  # a dropout argument: its default, or off
    whole = "the standard architecture, 32 px"
    return [
        ZooModel("resnet18", t, tv(lambda d: _tv("resnet18")(num_classes=10)), images(), whole),
        ZooModel("resnext (tiny)", t, tv(lambda d: _tv_tiny("resnet", "ResNet")(
            _tv_tiny("resnet", "Bottleneck"), [1, 1, 1, 1], num_classes=10, groups=8,
            width_per_group=4)), images(), "1 bottleneck per stage, 8 groups of 4, 32 px"),
        ZooModel("mobilenet_v3_small", t, tv(lambda d: _tv("mobilenet_v3_small")(
            num_classes=10, dropout=p(d, 0.2))), images(), whole),
        ZooModel("mobilenet_v2", t, tv(lambda d: _tv("mobilenet_v2")(
            num_classes=10, dropout=p(d, 0.2))), images(), whole),
        ZooModel("efficientnet_b0", t, tv(lambda d: _tv("efficientnet_b0")(
            num_classes=10, dropout=p(d, 0.2), stochastic_depth_prob=p(d, 0.2))),
            images(), whole),
        ZooModel("regnet_y_400mf", t, tv(lambda d: _tv("regnet_y_400mf")(num_classes=10)),
                 images(), whole),
        ZooModel("shufflenet_v2_x0_5", t, tv(lambda d: _tv("shufflenet_v2_x0_5")(
            num_classes=10)), images(), whole),
        ZooModel("squeezenet1_1", t, tv(lambda d: _tv("squeezenet1_1")(
            num_classes=10, dropout=p(d, 0.5))), images(64), "the standard architecture, 64 px"),
        ZooModel("mnasnet0_5", t, tv(lambda d: _tv("mnasnet0_5")(
            num_classes=10, dropout=p(d, 0.2))), images(), whole),
        ZooModel("googlenet", t, tv(lambda d: _tv("googlenet")(
            num_classes=10, aux_logits=False, init_weights=True, dropout=p(d, 0.2))),
            images(64), "the standard architecture without aux heads, 64 px"),
        ZooModel("densenet (tiny)", t, tv(lambda d: _tv_tiny("densenet", "DenseNet")(
            growth_rate=8, block_config=(2, 2, 2, 2), num_init_features=16, bn_size=2,
            num_classes=10)), images(), "growth 8, 2 layers per block, 32 px"),
        ZooModel("convnext (tiny)", t, tv(lambda d: _tv_tiny("convnext", "ConvNeXt")(
            [_tv_tiny("convnext", "CNBlockConfig")(16, 32, 1),
             _tv_tiny("convnext", "CNBlockConfig")(32, 64, 1),
             _tv_tiny("convnext", "CNBlockConfig")(64, None, 1)],
            stochastic_depth_prob=p(d, 0.1), num_classes=10)),
            images(), "3 stages of 1 block, widths 16-32-64, 32 px"),
        ZooModel("swin (tiny)", t, tv(lambda d: _tv_tiny("swin_transformer", "SwinTransformer")(
            patch_size=[4, 4], embed_dim=16, depths=[1, 1], num_heads=[2, 4],
            window_size=[4, 4], stochastic_depth_prob=p(d, 0.1), num_classes=10)),
            images(), "2 stages of 1 block, embed 16, window 4, 32 px"),
        ZooModel("swin_v2 (tiny)", t, tv(lambda d: _tv_tiny(
            "swin_transformer", "SwinTransformer")(
            patch_size=[4, 4], embed_dim=16, depths=[1, 1], num_heads=[2, 4],
            window_size=[4, 4], stochastic_depth_prob=p(d, 0.1), num_classes=10,
            block=_tv_tiny("swin_transformer", "SwinTransformerBlockV2"),
            downsample_layer=_tv_tiny("swin_transformer", "PatchMergingV2"))),
            images(), "v2 blocks, 2 stages of 1 block, embed 16, window 4, 32 px"),
        ZooModel("vit (tiny)", t, tv(lambda d: _tv_tiny("vision_transformer",
                                                        "VisionTransformer")(
            image_size=32, patch_size=8, num_layers=2, num_heads=4, hidden_dim=32, mlp_dim=64,
            dropout=p(d, DROPOUT), attention_dropout=p(d, DROPOUT), num_classes=10)),
            images(), "2 layers, hidden 32, patch 8, 32 px (nn.MultiheadAttention)"),
        ZooModel("maxvit (tiny)", t, tv(lambda d: _tv_tiny("maxvit", "MaxVit")(
            input_size=(32, 32), stem_channels=16, partition_size=2, block_channels=[16, 32],
            block_layers=[1, 1], head_dim=8, stochastic_depth_prob=p(d, 0.1),
            num_classes=10)), images(), "2 stages of 1 block, widths 16-32, partition 2, 32 px"),
        ZooModel("lraspp_mobilenet_v3", t, tv(lambda d: _tv_tiny(
            "segmentation", "lraspp_mobilenet_v3_large")(
            weights=None, weights_backbone=None, num_classes=4), head=SegmentationLoss),
            segmentation(), "the standard architecture, 64 px, 4 classes per pixel"),
    ]  # fmt: skip


# ---- timm ------------------------------------------------------------------------------------


def tm(name: str, drop_path=True, **kwargs):
    """timm's model `name` (or its class `name` in timm.models), no pretrained weights, 10
    classes; dropout (and drop path) 0, or DROPOUT for the variant."""

    def build(dropout: bool) -> nn.Module:
        import timm

        rates = {"drop_rate": DROPOUT if dropout else 0.0}
        if drop_path:
            rates["drop_path_rate"] = DROPOUT if dropout else 0.0
        if name[0].isupper():  # a class of timm.models, built with these arguments only
            model = getattr(timm.models, name)(num_classes=10, **rates, **kwargs)
        else:
            model = timm.create_model(name, pretrained=False, num_classes=10, **rates, **kwargs)
        return ClassifierLoss(_drop_off(model, dropout))

    return build


def _timm() -> list[ZooModel]:
    t = "timm"
    whole = "the standard architecture, 32 px"
    whole64 = "the standard architecture, 64 px"
    vit = dict(img_size=32, patch_size=8, depth=2, embed_dim=32, num_heads=4)
    vit_words = "2 layers, width 32, patch 8, 32 px"
    return [
        ZooModel("lcnet_050", t, tm("lcnet_050", drop_path=False), images(), whole),
        ZooModel("resnet10t", t, tm("resnet10t"), images(), whole),
        ZooModel("efficientnet_b0", t, tm("efficientnet_b0"), images(), whole),
        ZooModel("mobilenetv3_small_050", t, tm("mobilenetv3_small_050"), images(), whole),
        ZooModel("mobilenetv4_conv_small", t, tm("mobilenetv4_conv_small"), images(), whole),
        ZooModel("ghostnet_050", t, tm("ghostnet_050", drop_path=False), images(), whole),
        ZooModel("regnetx_002", t, tm("regnetx_002"), images(), whole),
        ZooModel("convnext_atto", t, tm("convnext_atto"), images(), whole),
        ZooModel("vit (tiny)", t, tm("vit_tiny_patch16_224", **vit), images(), vit_words),
        ZooModel("deit_distilled (tiny)", t, tm("deit_tiny_distilled_patch16_224", **vit),
                 images(), vit_words + ", distillation token"),
        ZooModel("eva02 (tiny)", t, tm("eva02_tiny_patch14_224", **vit), images(),
                 vit_words + ", rotary, SwiGLU"),
        ZooModel("mlp_mixer (tiny)", t, tm("MlpMixer", img_size=32, patch_size=8, num_blocks=2,
                                           embed_dim=32),
                 images(), "2 blocks, width 32, patch 8, 32 px"),
        ZooModel("mobilevit_xxs", t, tm("mobilevit_xxs"), images(64), whole64),
        ZooModel("levit_128s", t, tm("levit_128s", drop_path=False, img_size=64), images(64),
                 whole64),
        ZooModel("fastvit_t8", t, tm("fastvit_t8"), images(64),
                 "the standard architecture (training-time branches), 64 px"),
        ZooModel("pvt_v2_b0", t, tm("pvt_v2_b0"), images(64), whole64),
        ZooModel("edgenext_xx_small", t, tm("edgenext_xx_small"), images(64), whole64),
    ]  # fmt: skip


# ---- the registry ----------------------------------------------------------------------------

# the variants with dropout on: (family, name) of the models that also run so, and what that
# turns on
WITH_DROPOUT = [
    ("transformers", "BERT", f"every dropout of the config {DROPOUT}"),
    ("transformers", "GPT-2", f"every dropout of the config {DROPOUT}"),
    ("transformers", "Llama", f"attention dropout {DROPOUT} (inside SDPA)"),
    ("torchvision", "mobilenet_v3_small", "the classifier's dropout 0.2 (torchvision's default)"),
    ("torchvision", "vit (tiny)", f"dropout and attention dropout {DROPOUT}"),
    ("timm", "vit (tiny)", f"dropout and drop path (stochastic depth) {DROPOUT}"),
]


def _variant(entry: ZooModel, words: str) -> ZooModel:
    return ZooModel(
        entry.name + " +dropout",
        entry.family,
        entry.build,
        entry.batch,
        f"{entry.config}; {words}",
        dropout=True,
        requires=entry.requires,
    )


def _registry() -> list[ZooModel]:
    entries = []
    for family, models in [
        ("transformers", _transformers()),
        ("torchvision", _torchvision()),
        ("timm", _timm()),
    ]:
        for entry in models:
            assert entry.family == family
            entry = ZooModel(entry.name, family, entry.build, entry.batch, entry.config,
                             requires=REQUIRES[family])  # fmt: skip
            entries.append(entry)
    for family, name, words in WITH_DROPOUT:
        entry = next(e for e in entries if (e.family, e.name) == (family, name))
        entries.append(_variant(entry, words))
    return entries


ZOO: list[ZooModel] = _registry()


def key(entry: ZooModel) -> str:
    """The entry's unique name: family and name ("timm/vit_tiny +dropout")."""
    return f"{entry.family}/{entry.name}"


def select(patterns: str | None) -> list[ZooModel]:
    """The entries whose `key` contains one of the comma-separated substrings (any case)."""
    if not patterns:
        return list(ZOO)
    wanted = [p.strip().lower() for p in patterns.split(",") if p.strip()]
    return [e for e in ZOO if any(p in key(e).lower() for p in wanted)]
