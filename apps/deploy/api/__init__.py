"""REST API of the deploy app: releases and the dice.yml tools."""
