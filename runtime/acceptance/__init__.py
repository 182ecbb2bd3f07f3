"""Acceptance tests of a fine-tuned model: the assertion language (`assertions`), text
similarity (`similarity`), the JUnit report (`junit`), the suite, the model runner and the
gates. Import the submodule you need: the spec validator imports only `assertions`, so this
package file stays empty to keep `llmspec validate` fast."""
