"""Citations of the papers implemented in this package (used in model cards and docs)."""

from __future__ import annotations

import textwrap


def _paper(title: str, arxiv_id: str, key: str, authors: str, year: int) -> dict[str, str]:
    citation = textwrap.dedent(f"""\
        @article{{{key},
            title        = {{{{{title}}}}},
            author       = {{{authors}}},
            year         = {year},
            eprint       = {{arXiv:{arxiv_id}}},
        }}""")
    return {"title": title, "id": arxiv_id, "citation": citation}


DEEPSEEKMATH = _paper(
    "DeepSeekMath: Pushing the Limits of Mathematical Reasoning in Open Language Models",
    "2402.03300",
    "shao2024deepseekmath",
    "Zhihong Shao and Peiyi Wang and Qihao Zhu and Runxin Xu and Junxiao Song and Mingchuan Zhang and Y. K. Li "
    "and Y. Wu and Daya Guo",
    2024,
)

NEGATIVE_REINFORCEMENT = _paper(
    "The Surprising Effectiveness of Negative Reinforcement in LLM Reasoning",
    "2506.01347",
    "zhu2025surprising",
    "Xinyu Zhu and Mengzhou Xia and Zhepei Wei and Wei-Lin Chen and Danqi Chen and Yu Meng",
    2025,
)
