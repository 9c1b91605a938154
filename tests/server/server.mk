# tests/server/server.mk — build facts of the daemon that the Makefile's
# wildcards cannot see.
#
# server/openapi.c embeds proto/openapi.yaml with .incbin, which -MMD does
# not track: editing the contract must rebuild the object.
$(BUILD)/server/openapi.o: proto/openapi.yaml
# server/h_ui.c embeds the dashboard's files the same way.
$(BUILD)/server/h_ui.o: ui/index.html ui/app.js ui/app.css
