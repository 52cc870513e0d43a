"""The framework SDK without a cluster: the example schedulers against the fake driver, the
helpers they share, and how a task with a pod template becomes a Pod."""

from __future__ import annotations

import asyncio
import importlib.util
import threading
import time
from collections.abc import Coroutine
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from kubedrf.framework import (
    InverseOffer,
    KubedrfSchedulerDriver,
    Offer,
    OfferMismatchError,
    Scheduler,
    SchedulerDriver,
    TaskInfo,
    TaskState,
    TaskStatus,
    TaskTemplateError,
    fit,
)
from kubedrf.framework.driver import LAUNCH_CONCURRENCY
from kubedrf.framework.pods import MANAGED_TOLERATION, task_pod
from kubedrf.framework.testing import FakeDriver
from kubedrf.framework.watch import WatchEvent
from kubedrf.master.records import pinned_node, pod_requests
from kubedrf.resources import PODS, Resources
from tests.builders import res

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "frameworks"
TASK = res(cpu="1", memory="1Gi")


def example(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"example_{name}", EXAMPLES / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def run(step: Coroutine[Any, Any, None]) -> None:
    asyncio.run(step)


def offer(name: str, node: str = "n1", framework: str = "fw", **quantities: str | int) -> Offer:
    return Offer(name, framework, "default", node, res(**quantities), expires_at=0.0)


def launched_counts(driver: FakeDriver) -> dict[str, int]:
    return {name: len(tasks) for name, tasks in driver.answers.launched.items()}


# -- the batch example ------------------------------------------------------------------------


def test_batch_launches_what_fits_in_each_offer_and_declines_what_is_left() -> None:
    driver = FakeDriver(example("batch").BatchScheduler(5, TASK), name="job")
    run(driver.register())
    run(
        driver.offer(
            offer("o1", cpu="3", memory="8Gi"),
            offer("o2", cpu="8", memory="4Gi"),
            offer("o3", cpu="8", memory="8Gi"),
        )
    )
    assert launched_counts(driver) == {"o1": 3, "o2": 2}
    assert list(driver.answers.declined) == ["o3"]
    assert driver.offers == {}
    assert sorted(driver.tasks) == [f"job-{i}" for i in range(5)]
    assert {s.state for s in driver.tasks.values()} == {TaskState.STAGING}
    assert driver.answers.demands == [[(TASK, 5)], [(TASK, 0)]]


def test_batch_tasks_run_the_given_image_and_command_on_real_nodes() -> None:
    batch = example("batch")
    scheduler = batch.BatchScheduler(1, TASK, image="debian:12", command=("sh", "-c", "exit 0"))
    driver = FakeDriver(scheduler, name="job")
    run(driver.register())
    run(driver.offer(offer("o1", cpu="2", memory="2Gi")))
    (task,) = driver.answers.launched["o1"]
    assert (task.image, task.command) == ("debian:12", ("sh", "-c", "exit 0"))


def test_batch_launches_a_failed_task_again_under_a_new_name() -> None:
    driver = FakeDriver(example("batch").BatchScheduler(2, TASK), name="job")
    run(driver.register())
    run(driver.offer(offer("o1", cpu="2", memory="2Gi")))
    run(driver.update(TaskStatus("job-0", TaskState.FAILED, message="Crashed")))
    assert driver.answers.demands[-1] == [(TASK, 1)]
    run(driver.offer(offer("o2", cpu="2", memory="2Gi")))
    assert [t.name for t in driver.answers.launched["o2"]] == ["job-2"]


def test_a_restarted_batch_framework_wants_only_the_tasks_it_does_not_run() -> None:
    driver = FakeDriver(example("batch").BatchScheduler(3, TASK), name="job")
    run(
        driver.register(
            TaskStatus("job-0", TaskState.RUNNING), TaskStatus("job-1", TaskState.FINISHED)
        )
    )
    assert driver.answers.demands == [[(TASK, 1)]]
    run(driver.offer(offer("o1", cpu="4", memory="4Gi")))
    assert [t.name for t in driver.answers.launched["o1"]] == ["job-2"]


# -- the gang and primary-backup examples -----------------------------------------------------


def test_gang_declines_every_offer_until_the_offers_in_hand_hold_the_whole_gang() -> None:
    driver = FakeDriver(example("gang").GangScheduler(4, TASK, retry_seconds=1.0))
    run(driver.register())
    run(driver.offer(offer("o1", cpu="2", memory="8Gi"), offer("o2", cpu="1", memory="8Gi")))
    assert driver.answers.launched == {}
    assert driver.answers.declined == {"o1": 1.0, "o2": 1.0}
    run(driver.offer(offer("o3", cpu="2", memory="8Gi"), offer("o4", cpu="3", memory="8Gi")))
    assert launched_counts(driver) == {"o3": 2, "o4": 2}


def test_backups_are_launched_only_once_the_primary_runs_and_are_told_where() -> None:
    driver = FakeDriver(example("primary_backup").PrimaryBackupScheduler(TASK), name="pg")
    run(driver.register())
    run(driver.offer(offer("o1", cpu="4", memory="4Gi")))
    (primary,) = driver.answers.launched["o1"]
    assert primary.name == "pg-primary-0" and primary.env == {"ROLE": "primary"}
    run(driver.offer(offer("o2", cpu="4", memory="4Gi")))
    assert "o2" in driver.answers.declined  # the primary is not running yet
    run(driver.update(TaskStatus(primary.name, TaskState.RUNNING, node="n1", pod_ip="10.0.0.7")))
    run(driver.offer(offer("o3", node="n2", cpu="4", memory="4Gi")))
    backups = driver.answers.launched["o3"]
    assert [b.name for b in backups] == ["pg-backup-0", "pg-backup-1"]
    assert all(b.env["PRIMARY_IP"] == "10.0.0.7" for b in backups)


# -- helpers ----------------------------------------------------------------------------------


def test_fit_is_bounded_by_the_scarcest_resource_and_by_pods_when_the_offer_counts_them() -> None:
    assert fit(res(cpu="9", memory="18Gi"), res(cpu="1", memory="4Gi")) == 4
    assert fit(res(cpu="9", memory="18Gi", pods=2), res(cpu="1", memory="4Gi")) == 2
    assert fit(res(cpu="500m", memory="18Gi"), res(cpu="1", memory="4Gi")) == 0
    assert offer("o", cpu="3", memory="1Gi").fit(res(cpu="1")) == 3


def test_fit_refuses_a_shape_with_no_resources() -> None:
    with pytest.raises(ValueError, match="task shape: needs at least one resource"):
        fit(res(cpu="1"), Resources())


def test_new_task_names_skip_the_names_of_adopted_tasks_and_are_never_handed_out_twice() -> None:
    driver = FakeDriver(example("batch").BatchScheduler(0, TASK), name="job")
    run(driver.register(TaskStatus("job-1", TaskState.RUNNING)))
    assert [driver.new_task_name() for _ in range(3)] == ["job-0", "job-2", "job-3"]
    assert driver.new_task_name("job-backup") == "job-backup-0"


def test_launch_refuses_a_task_name_already_taken_or_tasks_larger_than_the_offer() -> None:
    driver = FakeDriver(example("batch").BatchScheduler(0, TASK), name="job")
    run(driver.register(TaskStatus("job-0", TaskState.FAILED)))
    with pytest.raises(OfferMismatchError, match="job-0 are already taken"):
        run(driver.launch(offer("o1", cpu="4", memory="4Gi"), [TaskInfo("job-0", TASK)]))
    twice = [TaskInfo("a", TASK), TaskInfo("a", TASK)]
    with pytest.raises(OfferMismatchError, match="a are already taken"):
        run(driver.launch(offer("o1", cpu="4", memory="4Gi"), twice))
    with pytest.raises(OfferMismatchError, match="offer o1 has"):
        one_pod = offer("o1", cpu="4", memory="4Gi", pods=1)
        run(driver.launch(one_pod, [TaskInfo("b", TASK), TaskInfo("c", TASK)]))
    assert set(driver.tasks) == {"job-0"}


def test_an_unchanged_demand_is_not_written_again() -> None:
    driver = FakeDriver(example("batch").BatchScheduler(0, TASK))
    for count in (3, 3, 2, 2):
        run(driver.set_demand([(TASK, count)]))
    assert driver.answers.demands == [[(TASK, 3)], [(TASK, 2)]]


def test_an_offer_is_read_through_the_api_model() -> None:
    body = {
        "metadata": {"name": "o1"},
        "spec": {
            "framework": "fw",
            "role": "eng",
            "nodeName": "n1",
            "resources": {"cpu": "2", "memory": "4Gi"},
            "expiresAt": "2030-01-01T00:00:00Z",
            "sizedFor": [{"resources": {"cpu": "1"}, "count": 2}],
        },
    }
    parsed = Offer.from_body(body)
    assert (parsed.role, parsed.node, parsed.resources) == ("eng", "n1", res(cpu="2", memory="4Gi"))
    assert parsed.sized_for == ((res(cpu="1"), 2),)
    assert parsed.expires_at == 1893456000.0
    del body["spec"]["nodeName"]
    with pytest.raises(ValueError, match=r"offer o1: spec\.nodeName: Field required"):
        Offer.from_body(body)


# -- task Pods --------------------------------------------------------------------------------

TEMPLATE: dict[str, Any] = {
    "serviceAccountName": "worker",
    "priorityClassName": "batch-low",
    "volumes": [{"name": "data", "emptyDir": {}}],
    "tolerations": [{"key": "spot", "operator": "Exists"}],
    "initContainers": [
        {"name": "fetch", "image": "busybox", "resources": {"requests": {"cpu": "1"}}}
    ],
    "containers": [
        {
            "name": "server",
            "image": "nginx",
            "ports": [{"containerPort": 80}],
            "env": [{"name": "MODE", "value": "fast"}, {"name": "LEVEL", "value": "1"}],
            "volumeMounts": [{"name": "data", "mountPath": "/data"}],
        },
        {
            "name": "proxy",
            "image": "envoy",
            "resources": {"requests": {"cpu": "250m", "memory": "64Mi"}},
        },
    ],
}


def test_a_pod_template_keeps_its_fields_under_the_kubedrf_parts() -> None:
    task = TaskInfo("t-0", res(cpu="2", memory="1Gi"), env={"LEVEL": "2"}, pod=TEMPLATE)
    pod = task_pod(task, offer("o1", node="n7", cpu="4", memory="4Gi"))
    spec = pod["spec"]
    assert (spec["serviceAccountName"], spec["priorityClassName"]) == ("worker", "batch-low")
    assert spec["volumes"] == TEMPLATE["volumes"]
    assert spec["tolerations"] == [*TEMPLATE["tolerations"], MANAGED_TOLERATION]
    server, proxy = spec["containers"]
    assert (server["name"], server["image"], server["ports"]) == (
        "server",
        "nginx",
        [{"containerPort": 80}],
    )
    assert server["env"] == [{"name": "MODE", "value": "fast"}, {"name": "LEVEL", "value": "2"}]
    assert server["resources"]["requests"] == {"cpu": "1750m", "memory": "960Mi"}
    assert proxy == TEMPLATE["containers"][1]
    assert pod["metadata"]["labels"]["kubedrf.io/offer"] == "o1"
    # The master counts exactly what the task asked for, on the offer's node.
    assert pod_requests(spec) == task.resources + {PODS: 1}
    assert pinned_node(spec) == "n7"


def test_a_required_node_affinity_in_the_template_is_narrowed_to_the_offers_node() -> None:
    zone = {"key": "zone", "operator": "In", "values": ["a"]}
    affinity = {
        "nodeAffinity": {
            "requiredDuringSchedulingIgnoredDuringExecution": {
                "nodeSelectorTerms": [{"matchExpressions": [zone]}]
            }
        }
    }
    pod = task_pod(TaskInfo("t", TASK, pod={"affinity": affinity}), offer("o1", node="n7", cpu="1"))
    (term,) = pod["spec"]["affinity"]["nodeAffinity"][
        "requiredDuringSchedulingIgnoredDuringExecution"
    ]["nodeSelectorTerms"]
    assert term["matchExpressions"] == [zone]
    assert term["matchFields"] == [{"key": "metadata.name", "operator": "In", "values": ["n7"]}]


def test_a_template_given_as_a_v1podspec_is_taken_as_its_dict() -> None:
    spec = client.V1PodSpec(
        containers=[client.V1Container(name="app", image="app:1")], service_account_name="sa"
    )
    pod = task_pod(TaskInfo("t", TASK, pod=spec), offer("o1", cpu="1", memory="1Gi"))
    assert pod["spec"]["serviceAccountName"] == "sa"
    assert pod["spec"]["containers"][0]["image"] == "app:1"


@pytest.mark.parametrize(
    ("template", "error"),
    [
        ({"nodeName": "n2"}, r"spec.nodeName is not allowed: the offer chooses the node"),
        ({"nodeSelector": {"zone": "a"}}, r"spec.nodeSelector is not allowed"),
        (
            {"containers": [{"name": "a", "resources": {"limits": {"cpu": "1"}}}]},
            r"spec.containers\[0\].resources is not allowed",
        ),
        ({"spec": {"containers": []}}, "give a PodSpec"),
    ],
)
def test_a_template_field_the_offer_decides_is_refused_when_the_task_is_made(
    template: dict[str, Any], error: str
) -> None:
    with pytest.raises(TaskTemplateError, match=error):
        TaskInfo("t", TASK, pod=template)


def test_a_template_that_fights_the_offer_is_refused_before_any_pod_is_made() -> None:
    other_node = {"matchFields": [{"key": "metadata.name", "operator": "In", "values": ["n2"]}]}
    affinity = {
        "nodeAffinity": {
            "requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [other_node]}
        }
    }
    with pytest.raises(TaskTemplateError, match="excludes the offer's node n1"):
        task_pod(
            TaskInfo("t", TASK, pod={"affinity": affinity}), offer("o1", cpu="1", memory="1Gi")
        )
    greedy = {"containers": [{"name": "a"}, {"name": "b", "resources": {"requests": {"cpu": "2"}}}]}
    with pytest.raises(TaskTemplateError, match="containers request"):
        task_pod(TaskInfo("t", TASK, pod=greedy), offer("o1", cpu="4", memory="4Gi"))


# -- the Kubernetes driver, with its API calls stubbed ----------------------------------------


class Recorder(Scheduler):
    def __init__(self) -> None:
        self.updates: list[TaskStatus] = []

    async def status_update(self, driver: SchedulerDriver, status: TaskStatus) -> None:
        self.updates.append(status)


class RefusingCore:
    """CoreV1Api that refuses to create the Pods named in ``refused``."""

    def __init__(self, *refused: str) -> None:
        self.refused = set(refused)
        self.created: list[str] = []

    def create_namespaced_pod(self, namespace: str, body: dict[str, Any]) -> None:
        if body["metadata"]["name"] in self.refused:
            raise ApiException(status=403, reason="Forbidden")
        self.created.append(body["metadata"]["name"])


class AnsweringCustom:
    """CustomObjectsApi that records each offer's response."""

    def __init__(self) -> None:
        self.responses: dict[str, dict[str, Any]] = {}

    def patch_namespaced_custom_object(self, *args: Any) -> dict[str, Any]:
        *_, name, patch = args
        self.responses[name] = patch["spec"]["response"]
        return patch


def kube_driver(scheduler: Scheduler) -> KubedrfSchedulerDriver:
    return KubedrfSchedulerDriver(scheduler, name="job", namespace="ns", api=client.ApiClient())


def live_offer(name: str, seconds: float = 30, **quantities: str) -> Offer:
    return Offer(name, "job", "default", "n1", res(**quantities), expires_at=time.time() + seconds)


def test_a_task_whose_pod_cannot_be_created_is_failed_and_the_others_are_accepted() -> None:
    recorder = Recorder()
    driver = kube_driver(recorder)
    core, custom = RefusingCore("job-1"), AnsweringCustom()
    driver.core, driver.custom = core, custom  # type: ignore[assignment]
    tasks = [TaskInfo("job-0", TASK), TaskInfo("job-1", TASK)]
    launched: list[str] = []

    async def launch() -> None:
        launched.extend(await driver.launch(live_offer("o1", cpu="2", memory="2Gi"), tasks))

    run(launch())
    assert launched == core.created == ["job-0"]
    assert custom.responses == {"o1": {"action": "Accept", "tasks": ["job-0"]}}
    assert driver.tasks["job-0"].state is TaskState.STAGING
    assert driver.tasks["job-1"].state is TaskState.FAILED
    assert "Forbidden" in driver.tasks["job-1"].message
    assert [(s.task, s.state) for s in recorder.updates] == [("job-1", TaskState.FAILED)]


def test_launches_on_several_offers_share_one_gate_and_skip_an_offer_expired_in_the_queue() -> None:
    """Offers launched together are worked through in order, LAUNCH_CONCURRENCY Pods at a
    time across all of them; tasks whose offer expires while they queue are not launched
    (the master would refuse their Pods) and that offer is declined, not left to expire."""
    driver = kube_driver(Recorder())
    custom = AnsweringCustom()
    creating = {"now": 0, "most": 0}
    created: list[str] = []
    counting = threading.Lock()

    class SlowCore:
        def create_namespaced_pod(self, namespace: str, body: dict[str, Any]) -> None:
            with counting:
                creating["now"] += 1
                creating["most"] = max(creating["most"], creating["now"])
            time.sleep(0.05)
            with counting:
                created.append(body["metadata"]["name"])
                creating["now"] -= 1

    driver.core, driver.custom = SlowCore(), custom  # type: ignore[assignment]
    first = live_offer("o1", cpu="40", memory="40Gi")
    second = live_offer("o2", seconds=0.1, cpu="40", memory="40Gi")
    size = 3 * LAUNCH_CONCURRENCY

    async def launch_both() -> list[list[str]]:
        one = [TaskInfo(f"a-{i}", TASK) for i in range(size)]
        two = [TaskInfo(f"b-{i}", TASK) for i in range(size)]
        return list(await asyncio.gather(driver.launch(first, one), driver.launch(second, two)))

    on_first, on_second = asyncio.run(launch_both())
    assert creating["most"] <= LAUNCH_CONCURRENCY
    assert on_first == [f"a-{i}" for i in range(size)] and on_second == []
    assert sorted(created) == sorted(on_first)  # none of the second: it expired in the queue
    assert custom.responses["o1"] == {"action": "Accept", "tasks": on_first}
    assert custom.responses["o2"] == {"action": "Decline"}
    assert not any(name.startswith("b-") for name in driver.tasks)


class ErrorRecorder(Scheduler):
    def __init__(self) -> None:
        self.errors: list[str] = []

    async def error(self, driver: SchedulerDriver, message: str) -> None:
        self.errors.append(message)


def test_a_task_larger_than_every_node_reaches_the_scheduler_once_through_error() -> None:
    scheduler = ErrorRecorder()
    driver = kube_driver(scheduler)
    condition = {
        "type": "TasksFit",
        "status": "False",
        "reason": "TaskLargerThanAnyNode",
        "message": "a task of cpu=16 is larger than every node: the largest for it, n1, has cpu=9",
    }
    framework = {"metadata": {"name": "job"}, "status": {"conditions": [condition]}}
    for _ in range(2):  # the status again at the next cycle: told once
        run(driver._on_framework(WatchEvent("MODIFIED", [framework])))
    (message,) = scheduler.errors
    assert "TasksFit is False" in message and "larger than every node" in message


def test_a_relist_kills_live_tasks_whose_pods_are_gone_but_not_ended_ones() -> None:
    recorder = Recorder()
    driver = kube_driver(recorder)
    driver.tasks["job-0"] = TaskStatus("job-0", TaskState.FAILED, message="Crashed")
    driver.tasks["job-1"] = TaskStatus("job-1", TaskState.RUNNING, node="n1")
    run(driver._on_pods(WatchEvent("SYNC", [])))
    assert [(s.task, s.state) for s in recorder.updates] == [("job-1", TaskState.KILLED)]
    assert driver.tasks["job-0"].message == "Crashed"


def test_asked_for_resources_back_primary_backup_ends_a_backup_first() -> None:
    driver = FakeDriver(example("primary_backup").PrimaryBackupScheduler(TASK), name="pg")
    run(
        driver.register(
            TaskStatus("pg-primary-0", TaskState.RUNNING, node="n1"),
            TaskStatus("pg-backup-0", TaskState.RUNNING, node="n1"),
            TaskStatus("pg-backup-1", TaskState.RUNNING, node="n2"),
        )
    )
    asked = InverseOffer(
        name="pg-revoke-1",
        node="n1",
        resources=TASK,
        tasks=("pg-primary-0",),  # the master named the newest; the framework knows better
        beneficiary="team/c",
        beneficiary_role="default",
        deadline=0.0,
    )
    run(driver.ask_back(asked))
    assert driver.answers.given_back == {"pg-revoke-1": ["pg-backup-0"]}
    assert driver.answers.killed == ["pg-backup-0"]


def test_by_default_a_framework_gives_back_what_the_master_named() -> None:
    driver = FakeDriver(Scheduler(), name="fw")
    asked = InverseOffer("fw-revoke-1", "n1", TASK, ("fw-3",), "team/c", "default", 0.0)
    run(driver.ask_back(asked))
    assert driver.answers.given_back == {"fw-revoke-1": ["fw-3"]}


class Offered(Scheduler):
    def __init__(self) -> None:
        self.offers: list[str] = []

    async def resource_offers(self, driver: SchedulerDriver, offers: list[Offer]) -> None:
        self.offers += [o.name for o in offers]


def test_an_offer_seen_only_after_its_expiry_is_never_given_to_the_scheduler() -> None:
    def body(name: str, expires: str) -> dict[str, Any]:
        return {
            "metadata": {"name": name},
            "spec": {
                "framework": "job",
                "role": "default",
                "nodeName": "n1",
                "resources": {"cpu": "1"},
                "expiresAt": expires,
            },
            "status": {"phase": "Offered"},
        }

    scheduler = Offered()
    driver = kube_driver(scheduler)
    late, fresh = body("late", "2000-01-01T00:00:00Z"), body("fresh", "2999-01-01T00:00:00Z")
    run(driver._on_offers([WatchEvent("SYNC", [late, fresh])]))
    assert scheduler.offers == ["fresh"]
    assert set(driver.offers) == {"fresh"}
