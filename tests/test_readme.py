"""The README tells the truth: its quick start commands exist, every setting is documented."""

import re
from pathlib import Path

from click.testing import CliRunner

from cli.main import cli
from settings import ENV_NAMES, Settings

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text()


def quick_start_commands() -> list[str]:
    section = README.split("## Quick start", 1)[1].split("\n## ", 1)[0]
    block = re.search(r"```sh\n(.*?)```", section, re.S).group(1)
    return [line.split("#")[0].strip() for line in block.splitlines() if line.split("#")[0].strip()]


def test_the_quick_start_is_exactly_make_demo_and_make_test_and_both_targets_exist():
    assert quick_start_commands() == ["make demo", "make test"]
    makefile = (ROOT / "Makefile").read_text()
    for command in quick_start_commands():
        assert re.search(rf"^{command.split()[1]}:", makefile, re.M), command


def test_ci_runs_the_readmes_test_command():
    assert "make test" in (ROOT / ".ci" / "run").read_text()


def test_every_ksync_command_the_readme_mentions_exists():
    mentioned = set(re.findall(r"`ksync ([a-z][a-z-]*)", README))
    assert {"demo", "sync", "history", "show", "retry-failed", "limits", "db", "flower"} <= mentioned
    for command in mentioned:
        assert CliRunner().invoke(cli, [command, "--help"]).exit_code == 0, command


def test_every_setting_is_in_the_configuration_table_with_its_default():
    table = README.split("## Configuration", 1)[1].split("\n## ", 1)[0]
    defaults = Settings()
    for field, name in ENV_NAMES.items():
        row = re.search(rf"^\| `{name}` \| ([^|]*) \|", table, re.M)
        assert row, f"{name} is not in the README's configuration table"
        value = getattr(defaults, field)
        if value not in ("", None) and name not in ("REDIS_URL", "DATABASE_URL"):
            shown = row.group(1).strip().strip("`")
            assert shown in (str(value), f"{value:g}" if isinstance(value, float) else str(value)), (name, shown, value)


def test_every_task_name_in_the_readme_is_a_registered_task():
    from workers.app import app
    import workers.tasks  # noqa: F401  (registers the tasks)

    named = set(re.findall(r"`(ksync\.[a-z_]+)`", README))
    assert named and named <= set(app.tasks), named - set(app.tasks)
