#!/usr/bin/env Rscript
# Generate the metafor conformance fixtures for binary-outcome pooling (metaanalysis.binary):
# Mantel-Haenszel (rma.mh, measures OR, RR, RD) and Peto's one-step odds ratio (rma.peto), with every
# zero-cell option (add, to, drop00 -- each as one value, which metafor applies to the escalc() yi/vi
# only, or as two values, the second for the MH/Peto computation itself), correct=FALSE and level=90.
#
#   Rscript tests/reference/make_binary_fixtures.R tests/reference
#
# Writes fixtures/binary/<dataset>.json. Every fit stores its exact R call: run the file's "setup_r"
# (defines `dat` with columns ai, bi, ci, di), then `res <- <r_call>`. The Python tests
# (tests/test_binary.py) read the JSON and never need R.
#
# Written for R 4.2.2 + metafor 3.8-1 + metadat 1.2-0 (Debian r-cran-metafor, r-cran-metadat).
# MH and Peto are closed forms: there is no iteration and no control= argument to tighten.

args <- commandArgs(trailingOnly = TRUE)
outdir <- if (length(args) >= 1) args[1] else "tests/reference"
fixdir <- file.path(outdir, "fixtures", "binary")
dir.create(fixdir, showWarnings = FALSE, recursive = TRUE)
suppressPackageStartupMessages(library(metafor))

# JSON writer with full precision and small helpers (jstr, jnum, tojson, arr, ...)
source(file.path(outdir, "fixture_json.R"))
sc <- function(x) if (is.null(x) || length(x) == 0) NA_real_ else unname(as.double(x))[1]

# ---------------------------------------------------------------------------------------------------------
# Datasets (none is used by make_fixtures.R, except dat.yusuf1985, of which that script uses table "9"
# and this one table "6"). Each setup defines dat with integer columns ai, bi, ci, di and no NA.
# ---------------------------------------------------------------------------------------------------------
DATASETS <- list(
  list(name = "nielweise2007",
       setup = "dat <- transform(dat.nielweise2007, bi = n1i - ai, di = n2i - ci)",
       source = "metadat dat.nielweise2007 (anti-infective catheters, catheter-related bloodstream infection): 18 trials, 6 with a zero cell, 1 with no events in either arm"),
  list(name = "anand1999",
       setup = "dat <- transform(dat.anand1999, bi = n1i - ai, di = n2i - ci)",
       source = "metadat dat.anand1999 (oral anticoagulants after myocardial infarction, mortality): 34 trials, 3 with a zero cell, 1 double-zero"),
  list(name = "yusuf1985_table6",
       setup = 'dat <- transform(subset(dat.yusuf1985, table == "6" & !is.na(ai)), bi = n1i - ai, di = n2i - ci)',
       source = "metadat dat.yusuf1985 table \"6\" (beta blockers, short-term mortality) without the one trial with missing counts (Snow 1): 21 trials, 3 double-zero"),
  list(name = "collins1985b_ned",
       setup = "dat <- with(subset(dat.collins1985b, !is.na(ned.xti)), data.frame(ai = ned.xti, bi = fup.nti - ned.xti, ci = ned.xci, di = fup.nci - ned.xci))",
       source = "metadat dat.collins1985b (diuretics in pregnancy), neonatal death, without the trial with missing counts: 8 trials, 3 with a zero cell, 2 double-zero"),
  list(name = "hine1989",
       setup = "dat <- transform(dat.hine1989, bi = n1i - ai, di = n2i - ci)",
       source = "metadat dat.hine1989 (prophylactic lidocaine after myocardial infarction, mortality): 6 trials, no zero cell"),
  list(name = "edge_or_one",
       setup = "dat <- data.frame(ai = c(10, 5, 3), bi = c(10, 5, 9), ci = c(10, 5, 3), di = c(10, 5, 9))",
       source = "synthetic: identical arms in every table, so the MH odds ratio is exactly 1 (metafor's N11 branch of Breslow-Day/Tarone) and Q = 0"),
  list(name = "edge_k1",
       setup = "dat <- data.frame(ai = 12, bi = 88, ci = 20, di = 80)",
       source = "synthetic: one table (Q = 0 with df 0, I2 = 0, H2 = 1; no Tarone/Breslow-Day p-value)"),
  list(name = "edge_no_control_events",
       setup = "dat <- data.frame(ai = c(3, 1, 4), bi = c(47, 49, 46), ci = c(0, 0, 0), di = c(50, 50, 50))",
       source = "synthetic: no control-arm events in any table, so the MH OR and RR are not estimable (NA) while RD and Peto are")
)

# (label, extra R arguments) -- each fit is rma.mh(ai, bi, ci, di, data=dat, measure=M, <extra>) or rma.peto(...)
OPTIONS <- list(
  c("default", ""),
  c("to_all", ', to="all"'),
  c("to_if0all", ', to="if0all"'),
  c("to_none", ', to="none"'),
  c("drop00_false", ", drop00=FALSE"),
  c("add_0.1", ", add=0.1"),
  c("both_only0", ', add=c(1/2, 1/2), to=c("only0", "only0")'),
  c("both_all", ', add=c(1/2, 1/2), to=c("all", "all")'),
  c("both_if0all", ', add=c(1/4, 1/2), to=c("if0all", "if0all")'),
  c("both_drop00", ", drop00=c(TRUE, TRUE)"),
  c("both_none_keep00", ', to=c("none", "none"), drop00=c(FALSE, FALSE)'),
  c("level90", ", level=90"),
  c("uncorrected", ", correct=FALSE")      # rma.mh only
)

full_length <- function(res, x) { out <- rep(NA_real_, res$k.f); out[res$not.na] <- x; out }

mh_result <- function(res, ratio) {
  out <- list(estimate = sc(res$beta), se = sc(res$se), stat = sc(res$zval), pvalue = sc(res$pval),
              ci_lower = sc(res$ci.lb), ci_upper = sc(res$ci.ub),
              q = sc(res$QE), q_df = max(res$k.yi - 1, 0), q_pvalue = sc(res$QEp), i2 = sc(res$I2), h2 = sc(res$H2),
              k = res$k, k_yi = res$k.yi, k_pos = sc(res$k.pos),
              cochran = sc(res$CO), cochran_pvalue = sc(res$COp), cmh = sc(res$MH), cmh_pvalue = sc(res$MHp),
              breslow_day = sc(res$BD), breslow_day_pvalue = sc(res$BDp), tarone = sc(res$TA), tarone_pvalue = sc(res$TAp))
  out
}

exp_result <- function(res, ratio) {
  if (!ratio) return(list(exp_estimate = NA_real_, exp_ci_lower = NA_real_, exp_ci_upper = NA_real_))
  p <- predict(res, transf = exp)
  list(exp_estimate = sc(p$pred), exp_ci_lower = sc(p$ci.lb), exp_ci_upper = sc(p$ci.ub))
}

one_fit <- function(fun, measure, opt) {
  call <- if (fun == "rma.mh") {
    sprintf('rma.mh(ai=ai, bi=bi, ci=ci, di=di, data=dat, measure="%s"%s)', measure, opt[2])
  } else {
    sprintf("rma.peto(ai=ai, bi=bi, ci=ci, di=di, data=dat%s)", opt[2])
  }
  res <- tryCatch(suppressWarnings(eval(parse(text = call))), error = function(e) e)
  fit <- list(`function` = fun, measure = measure, option = opt[1], r_call = call)
  if (inherits(res, "error")) {
    fit$error <- conditionMessage(res)
    return(fit)
  }
  ratio <- measure != "RD"
  r <- if (fun == "rma.mh") mh_result(res, ratio) else list(
    estimate = sc(res$beta), se = sc(res$se), stat = sc(res$zval), pvalue = sc(res$pval),
    ci_lower = sc(res$ci.lb), ci_upper = sc(res$ci.ub),
    q = sc(res$QE), q_df = max(res$k.yi - 1, 0), q_pvalue = sc(res$QEp), i2 = sc(res$I2), h2 = sc(res$H2),
    k = res$k, k_yi = res$k.yi, k_pos = sc(res$k.pos))
  r <- c(r, exp_result(res, ratio) )
  r$weights <- arr(full_length(res, weights(res)))
  r$yi <- arr(res$yi.f)
  r$vi <- arr(res$vi.f)
  fit$arguments <- list(add = arr(res$add), to = as.list(res$to), drop00 = as.list(res$drop00),
                        correct = if (fun == "rma.mh") res$correct else NULL, level = 1 - res$level)
  fit$result <- r
  fit
}

rver <- R.version.string
mver <- as.character(packageVersion("metafor"))
for (ds in DATASETS) {
  eval(parse(text = ds$setup))
  fits <- list()
  for (opt in OPTIONS) {
    for (m in c("OR", "RR", "RD")) fits[[length(fits) + 1]] <- one_fit("rma.mh", m, opt)
    if (opt[1] != "uncorrected") fits[[length(fits) + 1]] <- one_fit("rma.peto", "OR", opt)
  }
  fx <- list(dataset = ds$name, source = ds$source, setup_r = ds$setup, r_version = rver, metafor_version = mver,
             metadat_version = as.character(packageVersion("metadat")), k = nrow(dat),
             ai = arr(dat$ai), bi = arr(dat$bi), ci = arr(dat$ci), di = arr(dat$di), fits = fits)
  writeLines(tojson(fx), file.path(fixdir, paste0(ds$name, ".json")))
  cat(ds$name, ":", length(fits), "fits\n")
}
