"""Citations of the papers implemented in this package (used in model cards and docs)."""

from __future__ import annotations

import textwrap


def paper(title: str, arxiv_id: str, key: str, authors: str, year: int) -> dict[str, str]:
    """A paper record for model cards and the paper index: title, arXiv id and a BibTeX citation."""
    citation = textwrap.dedent(f"""\
        @article{{{key},
            title        = {{{{{title}}}}},
            author       = {{{authors}}},
            year         = {year},
            eprint       = {{arXiv:{arxiv_id}}},
        }}""")
    return {"title": title, "id": arxiv_id, "citation": citation}


DEEPSEEKMATH = paper(
    "DeepSeekMath: Pushing the Limits of Mathematical Reasoning in Open Language Models",
    "2402.03300",
    "shao2024deepseekmath",
    "Zhihong Shao and Peiyi Wang and Qihao Zhu and Runxin Xu and Junxiao Song and Mingchuan Zhang and Y. K. Li "
    "and Y. Wu and Daya Guo",
    2024,
)

NEGATIVE_REINFORCEMENT = paper(
    "The Surprising Effectiveness of Negative Reinforcement in LLM Reasoning",
    "2506.01347",
    "zhu2025surprising",
    "Xinyu Zhu and Mengzhou Xia and Zhepei Wei and Wei-Lin Chen and Danqi Chen and Yu Meng",
    2025,
)

DRPO = paper(
    "DRPO: Efficient Reasoning via Decoupled Reward Policy Optimization",
    "2510.04474",
    "li2025drpo",
    "Gang Li and Yan Chen and Ming Lin and Tianbao Yang",
    2025,
)

TOPR = paper(
    "Tapered Off-Policy REINFORCE: Stable and efficient reinforcement learning for LLMs",
    "2503.14286",
    "leroux2025topr",
    "Nicolas Le Roux and Marc G. Bellemare and Jonathan Lebensold and Arnaud Bergeron and Joshua Greaves and "
    "Alex Fr{\\'e}chette and Carolyne Pelletier and Eric Thibodeau-Laufer and S{\\'a}ndor Toth and Sam Work",
    2025,
)

BNPO = paper(
    "BNPO: Beta Normalization Policy Optimization",
    "2506.02864",
    "xiao2025bnpo",
    "Changyi Xiao and Mengdi Zhang and Yixin Cao",
    2025,
)

CDPO = paper(
    "Critical Tokens Matter: Token-Level Contrastive Estimation Enhances LLM's Reasoning Capability",
    "2411.19943",
    "lin2024critical",
    "Zicheng Lin and Tian Liang and Jiahao Xu and Qiuzhi Liu and Xing Wang and Ruilin Luo and Chufan Shi and Siheng "
    "Li and Yujiu Yang and Zhaopeng Tu",
    2024,
)

EMPG = paper(
    "Harnessing Uncertainty: Entropy-Modulated Policy Gradients for Long-Horizon LLM Agents",
    "2509.09265",
    "wang2025empg",
    "Jiawei Wang and Jiacai Liu and Yuqian Fu and Yingru Li and Xintao Wang and Yuan Lin and Yu Yue and Lin Zhang "
    "and Yang Wang and Ke Wang",
    2025,
)
