"""The localhost computer the MLIP jobs run on: cheap job polling (no login shell, 1 s poll interval)."""

from aiida import orm

from aiida_reactmlip import provision


def test_localhost_polls_without_a_login_shell(localhost):
    authinfo = localhost.get_authinfo(orm.User.collection.get_default())
    assert authinfo.get_auth_params()["use_login_shell"] is False
    assert localhost.get_minimum_job_poll_interval() == provision.LOCALHOST_POLL_INTERVAL == 1.0
    with authinfo.get_transport() as transport:
        assert transport._bash_command_str == "bash "  # what every `ps` poll of core.direct runs through
        status, stdout, _ = transport.exec_command_wait("echo $0; shopt -q login_shell && echo login || echo plain")
    assert status == 0 and stdout.split() == ["bash", "plain"]


def test_an_earlier_localhost_is_brought_up_to_date(aiida_profile):
    legacy = orm.Computer(label="legacy-localhost", hostname="localhost", description=provision.LOCALHOST_DESCRIPTION,
                          transport_type="core.local", scheduler_type="core.direct", workdir="/tmp/{username}").store()
    legacy.set_minimum_job_poll_interval(0.5)
    legacy.configure(safe_interval=0.0)  # aiida's default: a login shell
    user = orm.User.collection.get_default()
    assert legacy.get_authinfo(user).get_auth_params().get("use_login_shell", True) is True  # aiida default
    report = provision.ProvisionReport()
    computer = provision.ensure_localhost("legacy-localhost", report)
    assert computer.get_authinfo(user).get_auth_params()["use_login_shell"] is False
    assert computer.get_authinfo(user).get_auth_params()["safe_interval"] == 0.0
    assert computer.get_minimum_job_poll_interval() == 1.0
    # a computer someone else made (another description) is left as it is
    other = orm.Computer(label="users-own", hostname="localhost", description="mine", transport_type="core.local",
                         scheduler_type="core.direct", workdir="/tmp/{username}").store()
    other.configure(safe_interval=2.0)
    provision.ensure_localhost("users-own")
    assert other.get_authinfo(user).get_auth_params().get("use_login_shell", True) is True
