"""The README's examples, run as written against a real `make run`: the launcher (on a free port,
with its private redis-server and a real worker) prints the banner the README shows and its admin
login works; the token command it prints works; the curl example uploads a photo and a painting
and starts a job that succeeds; the batch-folder script leaves a zip of three results; and
`make stylize` makes a picture.

The snippets are read from README.md (fenced blocks whose first line is `# example: NAME`), so an
edit of the README that breaks an example breaks this test. The only changes made to them: the
port of the test's own service for the README's 8000, and the ids the uploads answered for the
placeholders the README asks the reader to fill in.
"""

from __future__ import annotations

import json
import re
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
import zipfile
from pathlib import Path

import pytest
from PIL import Image

from deploy_files import REPO
from launcher import BANNER, READY_TIMEOUT, Launcher, launcher_env, log_in

pytestmark = pytest.mark.skipif(shutil.which("redis-server") is None or shutil.which("curl") is None,
                                reason="needs redis-server and curl (apt-get install redis-server curl)")

README = REPO / "README.md"
LOCAL = "http://127.0.0.1:8000"  # where the examples point: `make run`'s default address
SHARED = REPO.parent / "shared" / "images"
JOB_TIMEOUT = 600  # s; fast-preset jobs queue behind each other on one CPU worker
# make's own variables from an outer `make test` would reach the inner make (jobserver descriptors).
MAKE_VARIABLES = ("MAKEFLAGS", "MFLAGS", "MAKELEVEL", "MAKEOVERRIDES")


def fenced_blocks() -> list[str]:
    """The text of every fenced block of README.md, in order."""
    blocks, current = [], None
    for line in README.read_text().splitlines(keepends=True):
        if line.startswith("```"):
            if current is None:
                current = []
            else:
                blocks.append("".join(current))
                current = None
        elif current is not None:
            current.append(line)
    return blocks


def example(name: str) -> str:
    """The README's fenced block that starts with `# example: NAME` (exactly one)."""
    blocks = [b for b in fenced_blocks() if b.startswith(f"# example: {name}\n")]
    assert len(blocks) == 1, f"README.md has {len(blocks)} blocks marked '# example: {name}'"
    return blocks[0]


def commands(block: str) -> list[str]:
    """The shell commands of a block: continued lines joined, comments left out."""
    lines = block.replace("\\\n", " ").splitlines()
    return [line.strip() for line in lines if line.strip() and not line.strip().startswith("#")]


def at(text: str, base: str) -> str:
    """The example pointed at the test's service instead of port 8000."""
    assert LOCAL in text, f"the example no longer points at {LOCAL}: {text!r}"
    return text.replace(LOCAL, base.rstrip("/"))


def shell(command: str, cwd: Path, env: dict[str, str], timeout: float = 300) -> str:
    done = subprocess.run(["bash", "-c", command], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=timeout)
    assert done.returncode == 0, f"{command}\nexit {done.returncode}\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    return done.stdout


def photo(kind: str, name: str, path: Path, long_side: int = 160) -> Path:
    img = Image.open(SHARED / kind / name).convert("RGB")
    img.thumbnail((long_side, long_side))
    img.save(path, format="JPEG", quality=90)
    return path


@pytest.fixture(scope="module")
def service(tmp_path_factory):
    """(launcher, its URL): `make run`'s launcher, started once for the examples of this module."""
    launcher = Launcher(launcher_env(tmp_path_factory.mktemp("readme")))
    try:
        url = launcher.wait_for(BANNER, READY_TIMEOUT).group(1)
        yield launcher, url
    finally:
        if launcher.process.poll() is None:
            launcher.stop(signal.SIGINT)


@pytest.fixture(scope="module")
def env(service) -> dict[str, str]:
    """The shell a reader types the examples into: the launcher's settings (VAR_DIR), no outer make."""
    launcher, _ = service
    return {k: v for k, v in launcher.env.items() if k not in MAKE_VARIABLES}


@pytest.fixture(scope="module")
def workdir(tmp_path_factory) -> Path:
    """The reader's folder: photo.jpg, painting.jpg, and photos/ with three photos."""
    folder = tmp_path_factory.mktemp("reader")
    photo("content", "chelsea.png", folder / "photo.jpg")
    photo("style", "starry_night.jpg", folder / "painting.jpg")
    (folder / "photos").mkdir()
    for name in ("tubingen.jpg", "golden_gate.jpg", "astronaut.png"):
        photo("content", name, folder / "photos" / (name.rsplit(".", 1)[0] + ".jpg"))
    return folder


@pytest.fixture(scope="module")
def token(env) -> str:
    """What the curl example's first line puts in $TOKEN."""
    first = commands(example("api-curl"))[0]
    assert first.startswith("TOKEN=$(")
    value = shell(f'{first}\nprintf %s "$TOKEN"', REPO, env)
    assert re.fullmatch(r"[0-9a-f]{64}", value), value
    return value


def get_json(url: str, token: str) -> dict:
    request = urllib.request.Request(url, headers={"Authorization": f"Token {token}"})
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read())


def test_the_banner_shows_what_the_readme_shows_and_its_login_and_token_command_work(service, env, token):
    launcher, url = service
    readme_banner = next(b for b in fenced_blocks() if b.startswith("==> The style transfer service is running at"))
    labels = [line.split(":")[0].strip() for line in readme_banner.splitlines()[1:] if ":" in line]
    assert labels == ["admin", "API", "broker", "data"]
    printed = [launcher.line_after(f"{label}:") for label in labels]  # each printed, in this order
    assert all(printed)
    password = re.search(r"username admin, password (\S+) \(new; shown only this once\)", printed[0]).group(1)
    assert log_in(url, "admin", password).endswith("/admin/")
    command = printed[1].split("a person's token: ", 1)[1]
    assert f"TOKEN=$({command})" == commands(example("api-curl"))[0]  # the README's line is the one printed
    # Tokens are stored hashed: each call makes a new one, and the earlier ones keep working.
    another = shell(command, REPO, env).strip()
    assert re.fullmatch(r"[0-9a-f]{64}", another) and another != token
    assert get_json(f"{url}api/v1/images/", another)["count"] >= 0
    assert get_json(f"{url}api/v1/images/", token)["count"] >= 0


def test_the_curl_example_uploads_both_images_and_its_job_succeeds(service, env, token, workdir):
    _, url = service
    upload_photo, upload_painting, start_job = commands(example("api-curl"))[1:]
    shell_env = {**env, "TOKEN": token}
    photo_id = json.loads(shell(at(upload_photo, url), workdir, shell_env))["id"]
    painting_id = json.loads(shell(at(upload_painting, url), workdir, shell_env))["id"]
    assert "<photo id>" in start_job and "<painting id>" in start_job
    job = json.loads(shell(at(start_job, url).replace("<photo id>", photo_id).replace("<painting id>", painting_id),
                           workdir, shell_env))
    assert job["status"] == "queued"

    deadline = time.monotonic() + JOB_TIMEOUT
    while (state := get_json(job["url"], token))["status"] in ("queued", "running"):
        assert time.monotonic() < deadline, f"the job did not finish: {state}"
        time.sleep(2)
    assert state["status"] == "succeeded", state
    request = urllib.request.Request(state["result_url"], headers={"Authorization": f"Token {token}"})
    with urllib.request.urlopen(request, timeout=30) as response:
        assert response.headers["Content-Type"] == "image/png" and response.read(8) == b"\x89PNG\r\n\x1a\n"


def test_the_batch_folder_script_leaves_a_zip_of_three_results(service, token, workdir):
    _, url = service
    script = workdir / "batch_style.py"
    script.write_text(at(example("batch-folder"), url))
    done = subprocess.run([sys.executable, str(script), token, "photos/", "painting.jpg"], cwd=workdir,
                          capture_output=True, text=True, timeout=JOB_TIMEOUT)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    with zipfile.ZipFile(workdir / "results.zip") as archive:
        names = archive.namelist()
        assert len(names) == 3 and {name.split("__")[0] for name in names} == {"tubingen", "golden_gate",
                                                                                  "astronaut"}
        assert all(archive.read(name).startswith(b"\x89PNG") for name in names)


def test_make_stylize_makes_a_picture(env, workdir):
    (command,) = commands(example("stylize"))
    for name in ("photo.jpg", "painting.jpg", "out.png"):
        assert f" {name}" in command or f'"{name}' in command
        command = command.replace(name, str(workdir / name))
    shell(command, REPO, env, timeout=JOB_TIMEOUT)
    with Image.open(workdir / "out.png") as result:
        assert max(result.size) == 256  # the fast preset's size
