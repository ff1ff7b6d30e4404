"""A hub model that cannot be had is refused before any run starts: offline and not cached, or with
no network (simulated: huggingface_hub's HTTP client fails to connect; nothing leaves the machine)."""

from __future__ import annotations

import pytest

from nmm_core import cli
from nmm_core.errors import ConfigError
from nmm_core.workflows import ModelSettings, check_model_source


def test_with_no_network_an_uncached_hub_model_is_one_line_after_one_request(hf_cache, no_network, tmp_path, capsys):
    """Without HF_HUB_OFFLINE, from_pretrained would retry the hub with back-off for each file, then fail
    deep inside; the source check asks once, and says what to do in one line, before any run folder."""
    runs = tmp_path / "runs"
    argv = ["train", "--model", "org/model", "--model-family", "qwen2_vl", "--output-dir", str(runs)]
    assert cli.main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "Traceback" not in err[0]
    assert err[0].startswith("error: --model org/model: 'org/model' is not in the local Hugging Face cache "
                             "(no config.json) and the hub could not be reached (")
    assert "`hf download org/model`" in err[0] and "HF_HUB_OFFLINE=1" in err[0] and "local folder" in err[0]
    # one question about the model, no retries (huggingface_hub may also ask for its own registry)
    assert [url for url in no_network if "/resolve/" in url] == ["https://huggingface.co/org/model/resolve/main/config.json"]
    assert not runs.exists()


def test_with_no_network_info_names_the_preset_and_its_pinned_revision(hf_cache, no_network, capsys):
    from nmm_core.presets import all_presets

    preset = all_presets()["qwen2-vl-2b"]
    assert cli.main(["info", "--model", "qwen2-vl-2b", "--image", "1024x768"]) == 2
    last = capsys.readouterr().err.strip().splitlines()[-1]
    assert last.startswith(f"error: --model qwen2-vl-2b: '{preset.hub_id}' at revision {preset.revision} is not")
    assert f"`hf download {preset.hub_id} --revision {preset.revision}`" in last
    assert len([url for url in no_network if "/resolve/" in url]) == 1


def test_with_no_network_a_whole_cached_model_needs_no_hub(hf_cache, no_network):
    hf_cache("org/model", "main", "config.json", "tokenizer_config.json", "model.safetensors")
    check_model_source(ModelSettings(model="org/model", family="qwen2_vl"))
    assert no_network == []  # the cache answered; the hub was never asked


def test_a_hub_that_answers_lets_an_uncached_model_through_and_one_that_refuses_is_one_line(hf_cache, no_network,
                                                                                           monkeypatch):
    import httpx2
    from huggingface_hub.utils import _http

    status = {"code": 200}

    def hub(request):
        headers = {"X-Repo-Commit": "0" * 40, "ETag": '"abc"', "Content-Length": "2"}
        if status["code"] == 404:
            headers = {"X-Error-Code": "RepoNotFound", "X-Error-Message": "Repository not found"}
        return httpx2.Response(status["code"], headers=headers, request=request)

    monkeypatch.setattr(_http, "_GLOBAL_CLIENT", None)
    monkeypatch.setattr(_http, "_GLOBAL_CLIENT_FACTORY", lambda: httpx2.Client(transport=httpx2.MockTransport(hub)))
    check_model_source(ModelSettings(model="org/model", family="qwen2_vl"))  # downloaded at load
    status["code"] = 404
    with pytest.raises(ConfigError, match=r"^--model org/model: .* and the hub refused it "
                                          r"\(404 Client Error\. Repository Not Found.*\): check the id"):
        check_model_source(ModelSettings(model="org/model", family="qwen2_vl"))
