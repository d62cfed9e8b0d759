"""`uni3d view` without nerfstudio: one line saying what to install; the core CLI never imports nerfstudio."""

import subprocess
import sys

from uni3d.cli import main


def test_view_without_nerfstudio_says_what_to_install(tmp_path, capsys, monkeypatch):
    import uni3d.nerfstudio.view as view

    monkeypatch.setattr(view, "nerfstudio_available", lambda: False)
    assert main(["view", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "pip install 'uni3d[nerfstudio]'" in err and err.count("\n") == 1


def test_core_commands_do_not_import_nerfstudio():
    code = ("import sys\nfrom uni3d.cli import main\nmain(['--help'])\n"
            "try:\n    main(['view', '--help'])\nexcept SystemExit:\n    pass\n"
            "assert 'nerfstudio' not in sys.modules, 'nerfstudio imported'")
    subprocess.run([sys.executable, "-c", code], check=True, capture_output=True)


def test_view_is_listed_in_the_usage(capsys):
    assert main([]) == 0
    assert "view" in capsys.readouterr().out
