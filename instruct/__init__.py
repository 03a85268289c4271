"""instruct: raw text -> instruction data -> a fine-tuned model."""
from instruct.noise import quiet_third_party

quiet_third_party()
