# tests/contract/contract.mk — the OpenAPI contract through the tools
# clients use (tests/contract/run.sh: redocly lint, swagger-cli validate,
# openapi-typescript + tsc against a typed client), from the committed
# lockfile. Once per `make test`, on the plain build.
#
#   make contract-test   just this suite
TEST_SCRIPTS += tests/contract/run.sh

.PHONY: contract-test
contract-test:
	tests/contract/run.sh
