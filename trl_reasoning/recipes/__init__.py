"""The shared pieces of the scripts in ``recipes/``: arguments, data, model, rewards, evaluation and run summaries.

The scripts stay short (parse, build, train); this package does the rest the same way for every recipe:

* :mod:`.arguments` — :class:`DatasetArguments`, the dataset / prompt / answer / embedded-task flags;
* :mod:`.task` — :func:`load_task`: a Hugging Face dataset with column mapping and chat template, or the embedded
  arithmetic task; the reward functions by name;
* :mod:`.model` — :func:`load_tokenizer`, :func:`load_policy`: a hub model for the trainer to load, or the embedded
  tiny model with its supervised warm-up cached under the output dir;
* :mod:`.callbacks` — the progress bar, the per-step table and greedy accuracy before / after training;
* :mod:`.summary` — ``summary.json`` and ``reward_curve.png``;
* :mod:`.teardown` — :func:`end_distributed_run`, the clean end of a multi-process launch.
"""

from .arguments import DatasetArguments
from .callbacks import GreedyAccuracy, MetricsTable, QuietProgress, add_greedy_accuracy, use_table_logging
from .model import load_policy, load_policy_model, load_tokenizer
from .summary import finish_run, plot_reward_curve, write_summary
from .task import REWARD_NAMES, Task, load_task
from .teardown import end_distributed_run


__all__ = [
    "REWARD_NAMES",
    "DatasetArguments",
    "GreedyAccuracy",
    "MetricsTable",
    "QuietProgress",
    "Task",
    "add_greedy_accuracy",
    "end_distributed_run",
    "finish_run",
    "load_policy",
    "load_policy_model",
    "load_task",
    "load_tokenizer",
    "plot_reward_curve",
    "use_table_logging",
    "write_summary",
]
