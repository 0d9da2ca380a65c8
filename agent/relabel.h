/* relabel: applies relabel_configs (targets), metric_relabel_configs
 * (samples), alert_relabel_configs and write_relabel_configs, exactly as
 * Prometheus's model/relabel does. The configs themselves are parsed and
 * validated by config. */
#ifndef SIDEWATCH_RELABEL_H
#define SIDEWATCH_RELABEL_H

#include <stdbool.h>
#include <stddef.h>

#include "arena.h"
#include "config.h"
#include "labels.h"

/* Applies cfgs in order to the labels in lb. Returns false as soon as a
 * keep/drop/keepequal/dropequal step drops the set (lb is then in an
 * unspecified state), true otherwise. Strings created by the rules are
 * allocated from `scratch`, which must live until the builder is finished.
 * `legacy_names` selects Prometheus's legacy label-name validation for
 * replace targets (metric_name_validation_scheme: legacy). */
bool relabel_apply(const config_relabel *cfgs, size_t n, labels_builder *lb, arena *scratch,
                   bool legacy_names);

#endif
