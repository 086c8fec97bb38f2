"""The budgeted recipe search: Optuna trials as train runs, chosen on validation, resumable, shared by workers."""

import json
import subprocess
import sys

import pytest

from tunesmith.config import load_config
from tunesmith.errors import TunesmithError
from tunesmith.pipeline import tune_project
from tunesmith.runs import list_runs
from tunesmith.train import selection


def lr_decides(monkeypatch, fail_on_trial=None):
    """Validation accuracy that grows with the learning rate (cases 0..k-1 correct), written as results.jsonl the
    way real validation evaluations are, so the paired comparison between trials has rows to pair."""

    def measure(self, model, tok, step, metrics, bf16):
        lr = self.plan.cfg.train.lr
        value = min(1.0, lr / 3e-3)
        n = len(self.plan.cases)
        out = self.run_dir / "validation" / f"step-{step}"
        out.mkdir(parents=True, exist_ok=True)
        with (out / "results.jsonl").open("w") as fh:
            for i, case in enumerate(self.plan.cases):
                fh.write(
                    json.dumps({"suite": "validation", "id": case.id, "scores": {"task_correct": i < round(value * n)}})
                    + "\n"
                )
        return round(value * n) / n, {"task_accuracy": value}

    monkeypatch.setattr(selection.ValidationSelector, "measure", measure)


@pytest.fixture
def big_validation(tiny_project):
    """The tiny project with 30 validation records of its own, so paired intervals have cases to work with."""
    from conftest import routing_rows, write_jsonl

    rows = routing_rows(60)[30:]
    for r in rows:
        r["messages"][1]["content"] = r["messages"][1]["content"].replace("ticket", "validation message")
    write_jsonl(tiny_project / "data" / "validation.jsonl", rows)
    text = (tiny_project / "tunesmith.yaml").read_text()
    text = text.replace(
        "data: {train: [data/tickets.jsonl]", "data: {train: [data/tickets.jsonl], validation: [data/validation.jsonl]"
    )
    (tiny_project / "tunesmith.yaml").write_text(text)
    return tiny_project


SEARCH = ["train.max_steps=2", "train.eval_steps=2", "tune.params=[lr, lora_r]", "tune.ranges={lr: [1e-4, 3e-3]}"]


def test_the_search_beats_the_default_on_validation_and_keeps_its_trials(big_validation, monkeypatch):
    lr_decides(monkeypatch)
    result = tune_project(big_validation, SEARCH + ["tune.max_trials=5"], budget_minutes=30)
    s = result.summary
    assert [t["number"] for t in s["trials"]] == [0, 1, 2, 3, 4] and s["trials"][0]["default"]
    assert s["trials"][0]["params"]["lr"] == pytest.approx(2e-4)  # trial 0 is the project's own recipe
    assert s["best"]["value"] > s["default"]["value"]
    assert s["vs_default"]["ci_low"] > 0 and s["vs_default"]["n"] == 30  # paired on the same validation cases
    assert result.best_config.train.lr == pytest.approx(s["best"]["params"]["lr"])
    # every trial is an ordinary train run in the registry; the study lives in the project
    trains = [r for r in list_runs(big_validation) if r["stage"] == "train"]
    assert len(trains) == 5 and (big_validation / ".tunesmith" / "tune" / "study.db").exists()
    # run again: the study is resumed, nothing is trained twice
    again = tune_project(big_validation, SEARCH + ["tune.max_trials=5"], budget_minutes=30)
    assert len(again.summary["trials"]) == 5 and again.summary["best"] == s["best"]
    assert len([r for r in list_runs(big_validation) if r["stage"] == "train"]) == 5


def test_the_first_trial_reuses_the_projects_own_run_trained_before(big_validation, monkeypatch):
    """`run` (or `train`) then `run --tune`: the project's own recipe is not trained a second time."""
    from tunesmith.pipeline import train_project

    lr_decides(monkeypatch)
    own = train_project(big_validation, SEARCH[:2])  # the same recipe the search starts from
    result = tune_project(big_validation, SEARCH + ["tune.max_trials=2"], budget_minutes=30)
    first = result.summary["trials"][0]
    assert first["default"] and first["reused"] and first["run"] == str(own.run_dir)
    assert first["selection"]["curve"] == own.result.selection["curve"]
    assert not result.summary["trials"][1]["reused"]
    assert len([r for r in list_runs(big_validation) if r["stage"] == "train"]) == 2  # own + trial 1


def test_a_killed_search_resumes_without_repeating_finished_trials(tiny_project, monkeypatch):
    from tunesmith.pipeline import training

    lr_decides(monkeypatch)
    real = training.train_stage
    calls = []

    def dies_on_the_third(*args, **kwargs):
        calls.append(kwargs["extra_inputs"]["search"]["trial"])
        if len(calls) == 3:
            raise KeyboardInterrupt  # like Ctrl-C (or a kill) in the middle of trial 2
        return real(*args, **kwargs)

    monkeypatch.setattr(training, "train_stage", dies_on_the_third)
    with pytest.raises(KeyboardInterrupt):
        tune_project(tiny_project, SEARCH + ["tune.max_trials=4"], budget_minutes=30)
    monkeypatch.setattr(training, "train_stage", real)
    result = tune_project(tiny_project, SEARCH + ["tune.max_trials=4"], budget_minutes=30)
    states = {t["number"]: t["state"] for t in result.summary["trials"]}
    assert states[0] == states[1] == "complete" and states[2] == "fail"  # trials 0 and 1 were not repeated
    assert sum(1 for v in states.values() if v == "complete") == 4


def test_trials_that_break_the_general_probe_gate_are_not_chosen(tiny_project, monkeypatch):
    from tunesmith.pipeline import training

    lr_decides(monkeypatch)
    # the higher the learning rate, the more general instruction following it costs
    monkeypatch.setattr(
        training,
        "probe_scorer",
        lambda cfg, project, ref: (
            lambda run_dir, result: 0.5 if result is None else 0.5 - (0.2 if result.details["lr"] > 1e-3 else 0.0)
        ),
    )
    over = SEARCH + [
        "tune.max_trials=6",
        "eval.general_probe=true",
        "eval.general_probe_limit=20",
        "eval.gates=[{metric: general.prompt_strict_accuracy, min_delta: -0.05, require_significant: false}]",
    ]
    result = tune_project(tiny_project, over, budget_minutes=30)
    s = result.summary
    assert any(not (t["forgetting"] or {}).get("ok", True) for t in s["trials"])  # some trial broke it ...
    assert s["best"]["params"]["lr"] <= 1e-3  # ... and was not chosen, however well it scored
    assert "30 probe prompts the gate does not use" in s["constraint"]


def test_a_budget_too_small_for_one_trial_says_how_long_a_trial_takes(tiny_project, monkeypatch):
    from tunesmith.train import progress

    lr_decides(monkeypatch)
    monkeypatch.setattr(
        progress.TimeBudget,
        "on_step_end",
        lambda self, args, state, control, **kw: (
            setattr(control, "should_training_stop", True) or setattr(self, "stopped", True)
        ),
    )
    with pytest.raises(TunesmithError) as err:
        tune_project(tiny_project, ["train.max_steps=4", "tune.max_trials=2"], budget_minutes=0.5)
    assert "too small" in str(err.value) and "one trial of this recipe takes about" in err.value.problems[0].message


def test_bad_search_settings_name_what_is_valid(tiny_project):
    with pytest.raises(TunesmithError) as err:
        load_config(tiny_project, ["tune.params=[lr, learning_rate]"])
    assert "'lr', 'epochs'" in err.value.problems[0].message
    with pytest.raises(TunesmithError) as err:
        tune_project(tiny_project, ["tune.params=[lr, general_share]"], budget_minutes=1)
    assert "general data" in err.value.problems[0].message
    with pytest.raises(TunesmithError) as err:
        tune_project(tiny_project, ["tune.params=[lr, general_kl]"], budget_minutes=1)
    assert err.value.problems[0].where == "tune.params: general_kl" and "general data" in err.value.problems[0].message


@pytest.mark.parametrize(
    "params,ranges,objective,message",
    [
        (["lora_alpha"], {"lora_alpha": [0.05, 1]}, "sft", "0.05: Input should be greater than or equal to 1"),
        (["lr"], {"lr": [0.5, 2]}, "sft", "2: Input should be less than 1"),
        (["lr"], {"lr": [3e-3, 1e-4]}, "sft", "low 0.003 is above high 0.0001"),
        (["lr"], {"lr": [0, 1e-3]}, "sft", "a learning rate is above 0"),
        (["epochs"], {"epochs": [0.5, 2]}, "sft", "0: Input should be greater than 0"),
        (["method"], {"method": ["lora", "dpo"]}, "sft", "'dpo': Input should be"),
        (["method"], {}, "dpo", "'full': DPO here uses the base with the adapter switched off"),
    ],
)
def test_a_value_no_trial_could_train_with_is_named_before_the_search(params, ranges, objective, message):
    """Each choice and each end of a range is applied and checked as the config is: these were pydantic or Optuna
    tracebacks in the middle of a search, the trial left RUNNING."""
    from tunesmith.config import Config
    from tunesmith.train.search.space import search_space

    cfg = Config()
    cfg.train.objective = objective
    cfg.tune.params, cfg.tune.ranges = params, ranges
    with pytest.raises(TunesmithError) as err:
        search_space(cfg)
    assert err.value.problems[0].where == f"tune.ranges.{params[0]}" and message in err.value.problems[0].message


def test_a_trial_that_switches_to_a_full_fine_tune_takes_a_tenth_of_the_lora_rate():
    """With `method` searched and `lr` not, full trials trained at the LoRA rate (ten times what the search itself
    gives a full fine-tune), and a full project's LoRA trials at the full rate."""
    from tunesmith.config import Config
    from tunesmith.train.search.space import apply_params

    cfg = Config()
    assert apply_params(cfg, {"method": "full"}).train.lr == pytest.approx(cfg.train.lr * 0.1)
    assert apply_params(cfg, {"method": "lora"}).train.lr == cfg.train.lr
    cfg.train.method, cfg.train.lr = "full", 1e-5
    assert apply_params(cfg, {"method": "lora"}).train.lr == pytest.approx(1e-4)


def test_a_reused_default_trial_stands_for_the_projects_own_recipe(tmp_path):
    """The first trial reuses the project's run, trained with its own recipe; its params are that recipe in the
    space's terms, snapped to the nearest choice (alpha 24 at r 16 is no multiple in [1, 2, 4]). When it wins, the
    config the project goes on with is its own, not the snapped one that was never trained."""
    import optuna

    from tunesmith.config import Config
    from tunesmith.train.search.result import result_of
    from tunesmith.train.search.space import default_params, suggest

    cfg = Config()
    cfg.train.lora.alpha = 24
    space = {"lora_alpha": [1, 2, 4]}
    study = optuna.create_study(direction="maximize")
    study.enqueue_trial(default_params(cfg, space, 100), user_attrs={"default": True})
    trial = study.ask()
    assert suggest(trial, space)["lora_alpha"] != 1.5
    trial.set_user_attr("reused", True)
    trial.set_user_attr("run", str(tmp_path))
    study.tell(trial, 0.8)
    assert result_of(study, cfg, space, "task_accuracy", 60.0, None, "budget spent").best_config.train == cfg.train


@pytest.mark.parametrize("kind", ["successive_halving", "hyperband"])
def test_the_first_trial_takes_its_rungs_so_later_trials_are_measured_against_it(kind):
    """Optuna's `auto` resources wait for a finished trial, so the first trial (the project's own recipe, the
    reference) never recorded a rung and a later trial far behind it at the same examples seen went on."""
    import optuna

    from tunesmith.config import Config
    from tunesmith.train.search.study import pruner, pruner_resources

    first, longest = pruner_resources(Config(), {"epochs": [1, 10]}, 1000)
    assert first == 504 and longest == 10_000  # two validations a pass of batch 8; ten passes
    study = optuna.create_study(direction="maximize", pruner=pruner(kind, first, longest))
    trial = study.ask()
    for examples, value in ((first, 0.6), (3 * first, 0.8), (9 * first, 0.9)):
        trial.report(value, examples)
        assert not trial.should_prune()
    study.tell(trial, 0.9)
    assert any(k.startswith("completed_rung_") for k in study.trials[0].system_attrs)
    if kind == "successive_halving":  # one bracket: every trial meets the reference at each rung
        behind = study.ask()
        behind.report(0.1, first)
        assert behind.should_prune()


def test_a_reaped_trial_counts_its_time_to_its_last_validation_not_to_the_restart():
    """A search killed overnight: its trial, failed when the next search opens the study, counted the hours between
    as trial time, and the next search stopped at once with "budget spent"."""
    import time

    import optuna

    from tunesmith.train.search.study import reap_dead_trials, time_spent

    study = optuna.create_study(storage=optuna.storages.InMemoryStorage())
    trial = study.ask()
    trial.set_user_attr("host", __import__("socket").gethostname())
    trial.set_user_attr("pid", 2**22 + 12345)  # no such process
    trial.set_user_attr("alive_at", trial.datetime_start.timestamp() + 1.0)  # its last validation, 1 s in
    time.sleep(1.5)  # the downtime before the next search
    reap_dead_trials(study)
    assert study.trials[0].state.name == "FAIL" and time_spent(study) == pytest.approx(1.0)


def test_a_trial_stopped_by_the_projects_own_time_limit_is_a_fair_candidate():
    """`budget.max_train_minutes` is part of the recipe: a trial it stops has ended as the project asks. Only the
    search's own cap makes a cut trial (pruned); every trial stopped by the user's limit was "cut", and with none
    finished the search said "raise --budget", which could not help."""
    from tunesmith.config import Config
    from tunesmith.train.search.trials import _within_budget

    cfg = Config()
    assert _within_budget(cfg, 600.0)[1] is True  # no limit of its own: the search's 10 minutes
    cfg.budget.max_train_minutes = 5.0
    tcfg, searchs = _within_budget(cfg, 1800.0)
    assert tcfg.budget.max_train_minutes == 5.0 and searchs is False
    tcfg, searchs = _within_budget(cfg, 120.0)
    assert tcfg.budget.max_train_minutes == 2.0 and searchs is True


def test_two_worker_processes_share_one_study(tiny_project, tmp_path):
    """Two `tunesmith tune` processes on one journal-file study (as machines sharing a file system would): each
    runs its own trials, none twice, and both see all of them."""
    journal = tmp_path / "shared" / "study.log"
    cmd = [
        sys.executable,
        "-m",
        "tunesmith",
        "tune",
        str(tiny_project),
        "--trials",
        "4",
        "--budget",
        "30m",
        "--storage",
        f"journal://{journal}",
        "--set",
        "train.max_steps=2",
        "--set",
        "train.eval_steps=2",
        "--set",
        "tune.params=[lr]",
    ]
    workers = [subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) for _ in range(2)]
    outputs = [w.communicate(timeout=600)[0] for w in workers]
    assert all(w.returncode == 0 for w in workers), outputs
    import optuna
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    storage = JournalStorage(JournalFileBackend(str(journal)))
    (summary,) = optuna.get_all_study_summaries(storage)
    study = optuna.load_study(study_name=summary.study_name, storage=storage)
    # a trial the pruner stopped is finished too (the tiny model's validation value decides which ones are)
    numbers = sorted(t.number for t in study.trials if t.state.name in ("COMPLETE", "PRUNED"))
    assert len(numbers) >= 4 and len(set(numbers)) == len(numbers)
    pids = {t.user_attrs["pid"] for t in study.trials}
    assert len(pids) == 2  # both workers ran trials


def test_a_default_trial_queued_twice_by_two_workers_is_trained_once():
    """Two workers open the study at once and both queue the project's own recipe: the second copy is failed and
    marked when asked for, the worker gets a new trial instead, and the summary leaves the copy out."""
    import optuna

    from tunesmith.train.search.study import ensure_default
    from tunesmith.train.search.trials import _ask

    study = optuna.create_study(direction="maximize")
    ensure_default(study, {"lr": 1e-3})
    study.enqueue_trial({"lr": 1e-3}, user_attrs={"default": True})  # the other worker, before it saw the first
    first = _ask(study)
    assert first.user_attrs["default"] and first.number == 0
    second = _ask(study)  # the other worker, while the first trains the default
    assert second.number == 2 and not second.user_attrs.get("default")
    copy = study.trials[1]
    assert copy.state.name == "FAIL" and copy.user_attrs["duplicate"]
    ensure_default(study, {"lr": 1e-3})  # a third worker: the running default counts, nothing more is queued
    assert not any(t.state.name == "WAITING" for t in study.get_trials(deepcopy=False))


def test_prompt_loss_and_neftune_are_choices_the_search_can_make():
    """`prompt_loss` and `neftune_alpha` in `tune.params`: a trial tries them; the project's own recipe maps to its
    settings."""
    import optuna

    from tunesmith.config import Config
    from tunesmith.train.search.space import apply_params, default_params, search_space, suggest

    cfg = Config()
    cfg.tune.params = ["lr", "prompt_loss"]
    space = search_space(cfg)
    assert space["prompt_loss"] == [False, True]
    assert default_params(cfg, space, 100)["prompt_loss"] is False
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    seen = {suggest(study.ask(), space)["prompt_loss"] for _ in range(12)}
    assert seen == {False, True}
    assert apply_params(cfg, {"prompt_loss": True}).train.prompt_loss is True
    cfg.tune.params = ["neftune_alpha"]
    assert default_params(cfg, search_space(cfg), 100) == {"neftune_alpha": 0.0}
    assert apply_params(cfg, {"neftune_alpha": 5.0}).train.neftune_alpha == 5.0


def test_loraplus_is_a_choice_of_the_search_that_a_full_fine_tune_drops():
    import optuna

    from tunesmith.config import Config
    from tunesmith.train.search.space import apply_params, default_params, search_space, suggest

    cfg = Config()
    cfg.tune.params = ["loraplus_lr_ratio", "method"]
    space = search_space(cfg)
    assert default_params(cfg, space, 100) == {"loraplus_lr_ratio": None, "method": "lora"}
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    assert {suggest(study.ask(), space)["loraplus_lr_ratio"] for _ in range(20)} == {None, 4.0, 16.0}
    assert apply_params(cfg, {"loraplus_lr_ratio": 16.0, "method": "lora"}).train.loraplus_lr_ratio == 16.0
    assert apply_params(cfg, {"loraplus_lr_ratio": 16.0, "method": "full"}).train.loraplus_lr_ratio is None


def test_a_new_project_gates_on_120_probe_prompts_and_keeps_the_other_30_for_the_search(tmp_path):
    """The starter's general probe: enough prompts that its 5-point gate is not decided by a lucky few (on Banking77
    the first 50 said -2 points where all 150 said -10.7 in loose accuracy), and the rest, disjoint from them, for
    the search's forgetting constraint."""
    from typer.testing import CliRunner

    from tunesmith.cli import app
    from tunesmith.eval.suite import general_probe
    from tunesmith.train.search.guard import CONSTRAINT_PROMPTS, spare_probe

    assert CliRunner().invoke(app, ["init", str(tmp_path / "p")]).exit_code == 0
    cfg, _ = load_config(tmp_path / "p")
    gated, spare = general_probe(cfg.eval.general_probe_limit), spare_probe(cfg)
    assert len(gated) == 120 and len(spare) == CONSTRAINT_PROMPTS == 30
    assert not {c.id for c in gated} & {c.id for c in spare}


def test_every_search_parameter_maps_the_projects_own_recipe_and_back():
    """The first trial is the project's recipe in the space's terms: every parameter the search may vary has a
    value there (general_kl had none: a KeyError), and applying them gives back the project's training settings."""
    from tunesmith.config import SEARCH_PARAMS, Config
    from tunesmith.train.search.space import apply_params, default_params, search_space

    cfg = Config()
    cfg.train.general_data = ["builtin:self"]
    cfg.train.general_kl = 3.0
    cfg.train.epochs = 3
    cfg.tune.params = list(SEARCH_PARAMS)
    params = default_params(cfg, search_space(cfg), 100)
    assert set(params) == set(SEARCH_PARAMS)
    assert params["general_kl"] == 3.0
    assert apply_params(cfg, params).train == cfg.train


def test_the_first_trial_counts_epochs_auto_over_what_the_trainer_trains_on(tiny_project, monkeypatch):
    """`epochs: auto` resolved by the search over the project's own mix (general data and repeats included), as the
    trainer resolves it, so the first trial is the project's own recipe (over the split's records alone it could
    be a pass more than the trainer makes)."""
    from conftest import write_jsonl
    from tunesmith.pipeline import train_project
    from tunesmith.train import search, trainer
    from tunesmith.train.trainer import resolve_epochs, task_labels

    # a rule of 60 examples: about 24 task records take 3 passes, with as many general ones 2 (not 10, the cap)
    monkeypatch.setattr(trainer, "AUTO_EXAMPLES", 60)
    monkeypatch.setattr(trainer, "LABEL_EXAMPLES", 1)

    general = [
        {"messages": [{"role": "user", "content": f"say {i}"}, {"role": "assistant", "content": f"{i}"}]}
        for i in range(30)
    ]
    write_jsonl(tiny_project / "data" / "general.jsonl", general)
    settings = ["train.general_data=[data/general.jsonl]", "train.general_share=0.5", "train.max_steps=1"]
    counted = {}

    class Stop(Exception):
        pass

    def the_search(cfg, project, split_key, identity, n_train, *rest, n_labels=None):
        counted["search"] = resolve_epochs("auto", n_train, n_labels)
        raise Stop

    def the_trainer(cfg, ref, records, *rest):
        labels = task_labels(cfg, records)
        task = [r for r in records if not r.provenance.get("general")]
        counted["trainer"] = resolve_epochs("auto", len(records), labels)
        counted["task alone"] = resolve_epochs("auto", len(task), labels)
        raise Stop

    monkeypatch.setattr(search, "search_recipe", the_search)
    with pytest.raises(Stop):
        tune_project(tiny_project, settings, budget_minutes=30)
    monkeypatch.setattr("tunesmith.train.run_recipe", the_trainer)
    with pytest.raises(Stop):
        train_project(tiny_project, settings)
    assert counted["search"] == counted["trainer"] < counted["task alone"], counted
