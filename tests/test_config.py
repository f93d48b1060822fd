"""Tests of fullmirror.config: defaults, validation, and bandersnatch compatibility."""

from __future__ import annotations

import configparser
import dataclasses
from pathlib import Path

import pytest
from packaging.utils import NormalizedName

from fullmirror.config import Config, load_config, parse_config
from fullmirror.errors import ConfigError
from fullmirror.filters import PLUGINS, FilterSettings, VersionRule

DEFAULT_CONF = Path(__file__).resolve().parent.parent / "default.conf"
UPSTREAM = "https://upstream.example"
BASE = f"[mirror]\ndirectory = /srv/pypi\nmaster = {UPSTREAM}\n"

#: Each Config field and the [mirror] key that sets it (kept here so the test is its own spec).
FIELD_KEYS = {
    "api_method": "api-method",
    "workers": "workers",
    "timeout": "timeout",
    "global_timeout": "global-timeout",
    "json": "json",
    "release_files": "release-files",
    "simple_format": "simple-format",
    "stop_on_error": "stop-on-error",
    "allow_non_https": "allow-non-https",
    "root_uri": "root_uri",
    "diff_file": "diff-file",
    "diff_append_epoch": "diff-append-epoch",
    "digest_name": "digest_name",
    "compare_method": "compare-method",
    "core_metadata": "core-metadata",
    "download_mirror": "download-mirror",
    "download_mirror_no_fallback": "download-mirror-no-fallback",
    "proxy": "proxy",
    "log_config": "log-config",
    "verifiers": "verifiers",
    "xmlrpc_delay": "xmlrpc-delay",
    "retries": "retries",
    "processes": "processes",
}
NOT_OPTIONS = {"directory", "master", "warnings", "filters"}


def field_defaults() -> dict[str, object]:
    return {f.name: f.default for f in dataclasses.fields(Config) if f.name not in NOT_OPTIONS}


def mirror(*lines: str) -> str:
    return BASE + "".join(f"{line}\n" for line in lines)


# --- default.conf ----------------------------------------------------------------------------


def test_every_option_field_has_a_key_in_this_test() -> None:
    assert set(field_defaults()) == set(FIELD_KEYS)


def test_default_conf_parses_to_the_field_defaults_without_warnings() -> None:
    text = DEFAULT_CONF.read_text(encoding="utf-8")
    assert "[mirror]\n" in text
    config = parse_config(
        text.replace("[mirror]\n", f"[mirror]\nmaster = {UPSTREAM}\n", 1), path=str(DEFAULT_CONF)
    )
    assert config.warnings == ()
    assert config.directory == Path("/srv/pypi")
    assert config.master == UPSTREAM
    assert {name: getattr(config, name) for name in FIELD_KEYS} == field_defaults()


def test_default_conf_writes_every_option_and_leaves_master_commented_out() -> None:
    parser = configparser.ConfigParser(interpolation=None)
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    parser.read_string(DEFAULT_CONF.read_text(encoding="utf-8"))
    assert parser.sections() == ["mirror"]
    assert set(parser["mirror"]) == {"directory", *FIELD_KEYS.values()}
    assert "\n; master = " in DEFAULT_CONF.read_text(encoding="utf-8")


# --- required keys, files, and parse errors --------------------------------------------------


def test_minimal_config() -> None:
    config = parse_config(BASE)
    assert config == Config(directory=Path("/srv/pypi"), master=UPSTREAM)


def test_missing_master_says_what_to_set() -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config("[mirror]\ndirectory = /srv/pypi\n", path="/etc/fm.conf")
    message = str(caught.value)
    assert message.startswith("/etc/fm.conf: [mirror] master is not set")
    assert "upstream index's base URL" in message
    assert "PEP 691" in message


@pytest.mark.parametrize("value", ["", "   "])
def test_empty_master_is_missing(value: str) -> None:
    with pytest.raises(ConfigError, match="master is not set"):
        parse_config(f"[mirror]\ndirectory = /srv/pypi\nmaster = {value}\n")


@pytest.mark.parametrize("line", ["", "directory =\n"])
def test_missing_directory(line: str) -> None:
    with pytest.raises(ConfigError, match=r"\[mirror\] directory is not set"):
        parse_config(f"[mirror]\n{line}master = {UPSTREAM}\n")


def test_missing_mirror_section() -> None:
    with pytest.raises(ConfigError, match=r"\[mirror\] section is missing"):
        parse_config(f"[plugins]\nenabled = all\n\n[Mirror]\nmaster = {UPSTREAM}\n")


@pytest.mark.parametrize(
    "text",
    [
        "directory = /srv/pypi\n",  # no section header
        "[mirror]\ndirectory\n",  # no value
        "[mirror]\nworkers = 3\nworkers = 4\n",  # duplicate key
        "[mirror]\n[mirror]\n",  # duplicate section
    ],
)
def test_unparseable_ini_names_the_file_in_one_line(text: str, tmp_path: Path) -> None:
    path = tmp_path / "broken.conf"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    message = str(caught.value)
    assert message.startswith(f"{path}: not a valid INI file: ")
    assert "\n" not in message


def test_missing_file_is_reported_and_not_created(tmp_path: Path) -> None:
    path = tmp_path / "nope.conf"
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    assert str(caught.value) == f"{path}: config file not found; create it from default.conf"
    assert caught.value.path == str(path)
    assert not path.exists()


def test_unreadable_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read the config file"):
        load_config(tmp_path)  # a directory


def test_file_that_is_not_utf8(tmp_path: Path) -> None:
    path = tmp_path / "latin1.conf"
    path.write_bytes(BASE.encode() + b"; caf\xe9\n")
    with pytest.raises(ConfigError, match="not UTF-8 text"):
        load_config(path)


def test_load_config_reads_a_file(tmp_path: Path) -> None:
    path = tmp_path / "fm.conf"
    path.write_text("\ufeff" + mirror("workers = 12"), encoding="utf-8")  # a BOM is tolerated
    assert load_config(path).workers == 12


# --- values ----------------------------------------------------------------------------------

BAD_VALUES = [
    ("api-method", "rest"),
    ("workers", "many"),
    ("workers", "0"),
    ("workers", "65"),
    ("workers", "-1"),
    ("workers", "2.5"),
    ("workers", "1_0"),
    ("workers", ""),
    ("timeout", "0"),
    ("timeout", "-1"),
    ("timeout", "soon"),
    ("timeout", "inf"),
    ("timeout", "nan"),
    ("timeout", "1e3"),
    ("global-timeout", "0"),
    ("global-timeout", "half an hour"),
    ("json", "maybe"),
    ("release-files", "2"),
    ("simple-format", "XML"),
    ("stop-on-error", "sometimes"),
    ("allow-non-https", "yesplease"),
    ("root_uri", "ftp://files.example"),
    ("root_uri", "/packages"),
    ("root_uri", "https://"),
    ("diff-file", "{{mirror_nope}}/x"),
    ("diff-file", "{{nothing}}/x"),
    ("diff-append-epoch", "often"),
    ("digest_name", "sha1"),
    ("compare-method", "mtime"),
    ("core-metadata", "perhaps"),
    ("download-mirror", "ftp://near.example"),
    ("download-mirror", "http://near.example"),
    ("download-mirror", "near.example"),
    ("download-mirror-no-fallback", "never"),
    ("proxy", "ftp://proxy.example:21"),
    ("proxy", "proxy.example:3128"),
    ("verifiers", "0"),
    ("verifiers", "65"),
    ("xmlrpc-delay", "-1"),
    ("xmlrpc-delay", "slow"),
    ("retries", "-1"),
    ("retries", "21"),
    ("hash-index", "flat"),
    ("keep_index_versions", "-1"),
    ("keep-index-versions", "some"),
    ("cleanup", "tidy"),
    ("storage-backend", "s3"),
    ("storage-backend", "swift"),
    ("storage-filesystem-manage-permissions", "0644"),
]


@pytest.mark.parametrize(("key", "value"), BAD_VALUES)
def test_bad_value_names_key_and_value(key: str, value: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config(mirror(f"{key} = {value}"), path="fm.conf")
    message = str(caught.value)
    assert message.startswith(f"fm.conf: [mirror] {key} = {value!r}: "), message
    assert len(message) > len(f"fm.conf: [mirror] {key} = {value!r}: ") + 10  # says what is allowed
    assert "\n" not in message


def test_bad_workers_message_says_what_is_allowed() -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config(mirror("workers = many"))
    assert caught.value.message == "workers = 'many': must be a whole number from 1 to 64"
    assert caught.value.key == "mirror"


@pytest.mark.parametrize(
    "master",
    ["ftp://upstream.example", "https://", "upstream.example", "https://up stream.example",
     "https://upstream.example/?x=1", "https://upstream.example/#top", "https://h:port/"],
)  # fmt: skip
def test_bad_master(master: str) -> None:
    with pytest.raises(ConfigError, match=r"\[mirror\] master = .*: must be an http\(s\) URL"):
        parse_config(f"[mirror]\ndirectory = /srv/pypi\nmaster = {master}\n")


def test_http_master_refused_without_allow_non_https() -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config("[mirror]\ndirectory = /srv/pypi\nmaster = http://10.0.0.5:8080\n")
    message = str(caught.value)
    assert "master = 'http://10.0.0.5:8080'" in message
    assert "allow-non-https = true" in message


def test_http_master_allowed_with_allow_non_https() -> None:
    config = parse_config(
        "[mirror]\ndirectory = /srv/pypi\nmaster = http://10.0.0.5:8080/\nallow-non-https = yes\n"
    )
    assert config.master == "http://10.0.0.5:8080"
    assert config.allow_non_https is True


def test_http_download_mirror_allowed_with_allow_non_https() -> None:
    config = parse_config(mirror("allow-non-https = true", "download-mirror = http://near/"))
    assert config.download_mirror == "http://near"


@pytest.mark.parametrize(
    ("master", "expected"),
    [
        ("https://upstream.example/", "https://upstream.example"),
        ("https://upstream.example/pypi//", "https://upstream.example/pypi"),
        ("https://user:secret@upstream.example:8443/root", "https://user:secret@upstream.example:8443/root"),
    ],
)  # fmt: skip
def test_master_trailing_slash_stripped(master: str, expected: str) -> None:
    config = parse_config(f"[mirror]\ndirectory = /srv/pypi\nmaster = {master}\n")
    assert config.master == expected


@pytest.mark.parametrize(
    ("word", "expected"),
    [("true", True), ("TRUE", True), ("yes", True), ("on", True), ("1", True),
     ("false", False), ("No", False), ("off", False), ("0", False)],
)  # fmt: skip
def test_boolean_words(word: str, expected: bool) -> None:
    assert parse_config(mirror(f"json = {word}")).json is expected
    assert parse_config(mirror(f"core-metadata = {word}")).core_metadata is expected


def test_every_value_is_read() -> None:
    config = parse_config(
        mirror(
            "api-method = Simple",
            "workers = 64",
            "timeout = 2.5",
            "global-timeout = 60",
            "json = true",
            "release-files = false",
            "simple-format = json",
            "stop-on-error = true",
            "root_uri = https://files.example/",
            "diff-file = /var/tmp/diff",
            "diff-append-epoch = true",
            "digest_name = SHA512",
            "compare-method = STAT",
            "core-metadata = false",
            "download-mirror = https://near.example/",
            "download-mirror-no-fallback = true",
            "proxy = socks5://proxy.example:1080",
            "log-config = /etc/fullmirror-log.ini",
            "verifiers = 1",
            "xmlrpc-delay = 0",
            "retries = 0",
        )
    )
    assert config == Config(
        directory=Path("/srv/pypi"),
        master=UPSTREAM,
        api_method="simple",
        workers=64,
        timeout=2.5,
        global_timeout=60.0,
        json=True,
        release_files=False,
        simple_format="JSON",
        stop_on_error=True,
        root_uri="https://files.example",
        diff_file="/var/tmp/diff",
        diff_append_epoch=True,
        digest_name="sha512",
        compare_method="stat",
        core_metadata=False,
        download_mirror="https://near.example",
        download_mirror_no_fallback=True,
        proxy="socks5://proxy.example:1080",
        log_config="/etc/fullmirror-log.ini",
        verifiers=1,
        xmlrpc_delay=0.0,
        retries=0,
    )


# --- directory and diff-file -----------------------------------------------------------------


def test_relative_directory_is_resolved_against_the_config_folder(tmp_path: Path) -> None:
    folder = tmp_path / "etc"
    folder.mkdir()
    path = folder / "fm.conf"
    path.write_text(f"[mirror]\ndirectory = data/../mirror\nmaster = {UPSTREAM}\n", "utf-8")
    assert load_config(path).directory == folder / "mirror"
    path.write_text(f"[mirror]\ndirectory = ../mirror\nmaster = {UPSTREAM}\n", "utf-8")
    assert load_config(path).directory == tmp_path / "mirror"


def test_home_directory_is_expanded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    config = parse_config(f"[mirror]\ndirectory = ~/pypi\nmaster = {UPSTREAM}\n")
    assert config.directory == tmp_path / "pypi"


def test_diff_file_reference_to_the_resolved_directory(tmp_path: Path) -> None:
    path = tmp_path / "fm.conf"
    path.write_text(
        f"[mirror]\ndirectory = web-root\nmaster = {UPSTREAM}\n"
        "diff-file = {{ mirror_directory }}/mirrored-files\n",
        "utf-8",
    )
    assert load_config(path).diff_file == f"{tmp_path / 'web-root'}/mirrored-files"


def test_diff_file_reference_to_another_section() -> None:
    config = parse_config(
        mirror("diff-file = {{paths_diff_root}}/files") + "[paths]\ndiff_root = /var/diffs\n"
    )
    assert config.diff_file == "/var/diffs/files"
    assert config.warnings == ("[paths] ignored: not a section fullmirror knows",)


def test_diff_file_without_reference_is_kept() -> None:
    assert parse_config(mirror("diff-file = /srv/pypi/diff")).diff_file == "/srv/pypi/diff"


# --- bandersnatch compatibility --------------------------------------------------------------

BANDERSNATCH_CONF = """\
[mirror]
; The directory where the mirror data will be stored.
directory = /srv/pypi
json = true
release-files = true
cleanup = false
master = https://upstream.example
timeout = 10
global-timeout = 1800
workers = 3
hash-index = false
simple-format = ALL
stop-on-error = false
storage-backend = filesystem
verifiers = 3
keep_index_versions = 0
compare-method = hash
diff-file = {{mirror_directory}}/mirrored-files
diff-append-epoch = true

[plugins]
enabled =
    blocklist_project
    exclude_platform

[blocklist]
packages =
    example1
platforms =
    windows
"""


def test_bandersnatch_config_loads_with_honest_warnings(tmp_path: Path) -> None:
    path = tmp_path / "bandersnatch.conf"
    path.write_text(BANDERSNATCH_CONF, encoding="utf-8")
    config = load_config(path)
    assert config.directory == Path("/srv/pypi")
    assert config.master == "https://upstream.example"
    assert config.json is True
    assert config.workers == 3
    assert config.verifiers == 3
    assert config.diff_file == "/srv/pypi/mirrored-files"
    assert config.diff_append_epoch is True
    assert config.warnings == ()
    assert config.filters.enabled == ("blocklist_project", "exclude_platform")
    assert config.filters.blocklist == (VersionRule(NormalizedName("example1")),)
    assert "win_amd64" in config.filters.platform_patterns


def test_bandersnatch_defaults_load_without_warnings() -> None:
    """Every key of bandersnatch's own defaults file, at its default, is accepted quietly."""
    config = parse_config(
        "[mirror]\ndirectory = /srv/pypi\n"
        "storage-backend = filesystem\nstorage-filesystem-manage-permissions = true\n"
        f"master = {UPSTREAM}\nproxy =\ndownload-mirror =\ndownload-mirror-no-fallback = false\n"
        "allow-non-https = false\njson = false\nrelease-files = true\nhash-index = false\n"
        "simple-format = ALL\ncompare-method = hash\ndigest_name = sha256\n"
        "keep-index-versions = 0\ncleanup = false\nstop-on-error = false\ntimeout = 10\n"
        "global-timeout = 1800\nworkers = 3\nverifiers = 3\nroot_uri =\ndiff-file =\n"
        "diff-append-epoch = false\nlog-config =\napi-method = simple\n"
    )
    assert config.warnings == ()
    assert config.api_method == "simple"


def test_keys_fullmirror_does_not_act_on_are_warned_about() -> None:
    config = parse_config(
        mirror(
            "hash-index = true",
            "keep_index_versions = 2",
            "keep-index-versions = 1",
            "cleanup = true",
            "storage-backend = FileSystem",
            "storage-filesystem-manage-permissions = false",
        )
        + "[s3]\nregion_name = here\n\n[regex_project_metadata]\nall:info.name = .*\n\n"
        "[custom]\nx = 1\n"
    )
    assert len(config.warnings) == 8
    for expected in (
        "[s3] ignored: S3 storage is not supported yet",
        "[regex_project_metadata] ignored: this filter is not supported yet",
        "[custom] ignored",
        "[mirror] hash-index = true: not supported",
        "[mirror] keep_index_versions = 2:",
        "[mirror] keep-index-versions = 1:",
        "[mirror] cleanup = true:",
        "[mirror] storage-filesystem-manage-permissions = false:",
    ):
        assert any(warning.startswith(expected) for warning in config.warnings), expected


def test_unknown_key_warns_with_its_name() -> None:
    config = parse_config(mirror("wokers = 3", "Workers = 4", "colour = blue"))
    assert config.workers == 8
    assert config.warnings == (
        "[mirror] wokers: unknown key, ignored; check its spelling (did you mean workers?)",
        "[mirror] Workers: unknown key, ignored; check its spelling (did you mean workers?)",
        "[mirror] colour: unknown key, ignored; check its spelling",
    )


def test_settings_without_effect_are_warned_about() -> None:
    config = parse_config(mirror("download-mirror-no-fallback = true", "diff-append-epoch = on"))
    assert config.warnings == (
        "[mirror] download-mirror-no-fallback = true has no effect without download-mirror",
        "[mirror] diff-append-epoch = true has no effect without diff-file",
    )


def test_config_is_frozen() -> None:
    config = parse_config(BASE)
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.workers = 2  # type: ignore[misc]


# --- filters ---------------------------------------------------------------------------------


def filtered(sections: str, *mirror_lines: str) -> Config:
    return parse_config(mirror(*mirror_lines) + sections, path="/etc/fm/fm.conf")


def test_no_filter_sections_means_no_filtering() -> None:
    assert filtered("").filters == FilterSettings()
    assert not FilterSettings().filters_anything


def test_sections_do_nothing_until_their_plugin_is_enabled() -> None:
    config = filtered("[filter_regex]\npackages = .*\n[latest_release]\nkeep = 2\n")
    assert config.filters.enabled == ()
    assert config.warnings == (
        "[filter_regex] has no effect: enable regex_project or regex_release in [plugins] enabled",
        "[latest_release] has no effect: enable latest_release in [plugins] enabled",
    )


@pytest.mark.parametrize("text", ["all", "\n    all", "latest_release all"])
def test_all_enables_every_plugin(text: str) -> None:
    assert filtered(f"[plugins]\nenabled = {text}\n").filters.enabled == PLUGINS


def test_enabled_is_a_space_or_newline_list_in_plugin_order() -> None:
    config = filtered("[plugins]\nenabled = regex_release\n    allowlist_project\n")
    assert config.filters.enabled == ("allowlist_project", "regex_release")


def test_unknown_plugin_is_an_error_with_a_suggestion() -> None:
    with pytest.raises(ConfigError) as caught:
        filtered("[plugins]\nenabled = allowlist_projekt\n")
    assert "[plugins] enabled = 'allowlist_projekt'" in str(caught.value)
    assert "did you mean allowlist_project?" in str(caught.value)


def test_unsupported_plugin_is_a_warning() -> None:
    config = filtered("[plugins]\nenabled = regex_project_metadata\n")
    assert config.filters.enabled == ()
    assert "regex_project_metadata is not supported yet" in config.warnings[0]


def test_package_lists_normalize_names_and_keep_specifiers() -> None:
    config = filtered(
        "[allowlist]\npackages =\n    Black>=25.1.0\n    # a comment\n    Zope.Interface  # why\n"
        "[blocklist]\npackages = evil_pkg\n"
    )
    assert config.filters.allowlist == (
        VersionRule(NormalizedName("black"), ">=25.1.0"),
        VersionRule(NormalizedName("zope-interface")),
    )
    assert config.filters.blocklist == (VersionRule(NormalizedName("evil-pkg")),)


def test_bad_package_line_names_the_key() -> None:
    with pytest.raises(ConfigError, match=r"\[allowlist\] packages: 'black >> 1' is not"):
        filtered("[allowlist]\npackages = black >> 1\n")


def test_requirements_files_and_globs(tmp_path: Path) -> None:
    (tmp_path / "reqs").mkdir()
    (tmp_path / "reqs" / "a.txt").write_text("-r b.txt\nfoo==1.0  # pinned\n\nBar>=2 \\\n  ,<3\n")
    (tmp_path / "reqs" / "b.txt").write_text(
        "-c constraints.txt\nbaz[extra]==2.0; python_version>'3'\n"
    )
    conf = tmp_path / "fm.conf"
    conf.write_text(mirror() + "[allowlist]\nrequirements_path = reqs\nrequirements =\n    *.txt\n")
    rules = load_config(conf).filters.requirements
    assert rules == (
        VersionRule(NormalizedName("foo"), "==1.0"),
        VersionRule(NormalizedName("bar"), "<3,>=2"),
        VersionRule(NormalizedName("baz"), "==2.0"),
    )


def test_bad_requirements_line_names_file_and_line(tmp_path: Path) -> None:
    (tmp_path / "r.txt").write_text("foo\n./local/path\n")
    conf = tmp_path / "fm.conf"
    conf.write_text(mirror() + "[allowlist]\nrequirements = r.txt\n")
    with pytest.raises(ConfigError) as caught:
        load_config(conf)
    assert f"{tmp_path / 'r.txt'} line 2: './local/path'" in str(caught.value)


def test_requirements_that_match_no_file(tmp_path: Path) -> None:
    conf = tmp_path / "fm.conf"
    conf.write_text(mirror() + "[allowlist]\nrequirements = missing-*.txt\n")
    with pytest.raises(ConfigError, match="no file matches"):
        load_config(conf)


def test_platforms_as_bandersnatch_reads_them() -> None:
    settings = filtered("[blocklist]\nplatforms =\n    macos py3.10\n    win_amd64\n").filters
    assert settings.platform_patterns == (
        "macosx_", "macosx-", "-cp310-", "-pp310-", "-ip310-", "-jy310-", "-py3.10-",
        "-py3.10.", "win_amd64",
    )  # fmt: skip
    assert settings.platform_packagetypes == ("bdist_dmg",)
    with pytest.raises(ConfigError, match=r"\[blocklist\] platforms = 'solaris': unknown"):
        filtered("[blocklist]\nplatforms = solaris\n")


def test_regex_prerelease_latest_size_and_counts() -> None:
    settings = filtered(
        "[filter_regex]\npackages = .+-evil$\nreleases =\n    .*dev.*\n    .*#1\n"
        "[filter_prerelease]\npackages = Demo_Pre\n"
        "[latest_release]\nkeep = 3\nsort_by = time\n"
        "[size_project_metadata]\nmax_package_size = 2M\n"
        "[versions_count_project_metadata]\nmin_versions = 2\nmax_versions = 50\n"
    ).filters
    assert settings.project_patterns == (".+-evil$",)
    assert settings.release_patterns == (".*dev.*", ".*#1")
    assert settings.prerelease_projects == ("demo-pre",)
    assert (settings.latest_keep, settings.latest_sort_by) == (3, "time")
    assert settings.max_package_size == 2 * 1024 * 1024
    assert (settings.min_versions, settings.max_versions) == (2, 50)


@pytest.mark.parametrize(
    ("sections", "message"),
    [
        ("[filter_regex]\nreleases = (\n", r"\[filter_regex\] releases: '\(' is not a regular"),
        ("[latest_release]\nkeep = -1\n", r"\[latest_release\] keep = '-1'"),
        ("[latest_release]\nsort_by = size\n", r"sort_by = 'size': must be version or time"),
        ("[size_project_metadata]\nmax_package_size = 1T\n", r"max_package_size = '1T'"),
        (
            "[versions_count_project_metadata]\nmin_versions = 5\nmax_versions = 2\n",
            "min_versions = 5 is above max_versions = 2",
        ),
        ("[targets]\nenvironments = cp311-nonsense\n", r"\[targets\] environments: "),
        ("[targets]\nsdists = maybe\n", r"\[targets\] sdists = 'maybe'"),
    ],
)
def test_bad_filter_values(sections: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        filtered(sections)


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        ("0", 0.0),
        ("90", 90.0),
        ("30s", 30.0),
        ("2h", 7200.0),
        ("7d", 604800.0),
        ("1w", 604800.0),
        ("1.5m", 90.0),
    ],
)
def test_min_age_units(value: str, seconds: float) -> None:
    assert filtered("", f"min-age = {value}").filters.min_age == seconds


def test_bad_min_age() -> None:
    with pytest.raises(ConfigError, match=r"\[mirror\] min-age = '7 days'"):
        filtered("", "min-age = 7 days")


def test_targets_sdists_and_dependencies() -> None:
    settings = filtered(
        "[targets]\nenvironments = cp311-manylinux_2_28_x86_64 cp312-win_amd64\nsdists = no\n"
        "[allowlist]\npackages = demo-app\ndependencies = true\n"
    ).filters
    assert [t.spec for t in settings.targets] == ["cp311-manylinux_2_28_x86_64", "cp312-win_amd64"]
    assert settings.sdists is False
    assert settings.dependencies is True
    assert settings.filters_anything
    # The seeds and their closure are the whole mirror, [plugins] or not.
    assert settings.enabled == ("allowlist_project",)


def test_dependencies_need_targets_and_seeds() -> None:
    with pytest.raises(ConfigError, match=r"needs \[targets\] environments"):
        filtered("[allowlist]\npackages = demo-app\ndependencies = true\n")
    with pytest.raises(ConfigError, match="has no seeds"):
        filtered("[targets]\nenvironments = cp311-win_amd64\n[allowlist]\ndependencies = true\n")


def test_sdists_without_targets_is_a_warning() -> None:
    config = filtered("[targets]\nsdists = false\n")
    assert config.warnings == (
        "[targets] sdists = false has no effect without environments; sdists are kept",
    )


def test_unknown_key_in_a_filter_section_is_a_warning() -> None:
    config = filtered("[allowlist]\npackage = demo\n")
    assert config.warnings == (
        "[allowlist] package: unknown key, ignored (did you mean packages?)",
    )
