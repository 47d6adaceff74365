#!/usr/bin/env Rscript
# Generate the metafor conformance fixtures for metaanalysis.
#
#   Rscript tests/reference/make_fixtures.R tests/reference
#
# R-version independence: every fit's exact R code is stored in its fixture ("setup_r" builds `dat`,
# "r_call" is the rma() call, plus the confint()/predict() calls in README.md), so a fixture can be
# regenerated or audited under any R/metafor version without this script. The fixtures are committed:
# the Python tests never need R.
#
# Written for R 4.2.2 + metafor 3.8-1 + metadat (Debian r-cran-metafor). See README.md for the format,
# the control settings and where a fixture deviates from metafor's default output, and
# METAFOR_FORMULAS.md for the formulas.

args <- commandArgs(trailingOnly = TRUE)
outdir <- if (length(args) >= 1) args[1] else "tests/reference"
fixdir <- file.path(outdir, "fixtures")
dir.create(fixdir, showWarnings = FALSE, recursive = TRUE)
suppressPackageStartupMessages(library(metafor))

# JSON writer with full precision and small helpers (jstr, jnum, tojson, arr, nn, f17)
source(file.path(outdir, "fixture_json.R"))

# ---------------------------------------------------------------------------------------------------------
# Settings
# ---------------------------------------------------------------------------------------------------------
METHODS <- c("FE", "DL", "REML", "ML", "PM", "HS", "SJ", "EB", "HE")
TESTS <- c("z", "knha", "adhoc")
CTRL <- "threshold=1e-12, maxiter=10000, tol=1e-12"
ITERATIVE <- c("REML", "ML", "EB")        # Fisher scoring in metafor; iteration count printed with verbose
ROOTFIND <- c("PM")                       # uniroot in metafor (count not exposed)

DATASETS <- list(
  list(name = "bcg", setup = 'dat <- escalc(measure="RR", ai=tpos, bi=tneg, ci=cpos, di=cneg, data=dat.bcg)',
       source = "metadat dat.bcg (BCG vaccine trials), log risk ratios via escalc(measure=\"RR\")",
       groups = "alloc"),
  list(name = "hackshaw1998", setup = "dat <- dat.hackshaw1998",
       source = "metadat dat.hackshaw1998 (ETS and lung cancer), log odds ratios yi/vi as shipped (from reported CIs)"),
  list(name = "normand1999", setup = 'dat <- escalc(measure="MD", m1i=m1i, sd1i=sd1i, n1i=n1i, m2i=m2i, sd2i=sd2i, n2i=n2i, data=dat.normand1999)',
       source = "metadat dat.normand1999 (length of stay, stroke care), raw mean differences via escalc(measure=\"MD\")"),
  list(name = "molloy2014", setup = 'dat <- escalc(measure="ZCOR", ri=ri, ni=ni, data=dat.molloy2014)',
       source = "metadat dat.molloy2014 (conscientiousness and adherence), Fisher r-to-z via escalc(measure=\"ZCOR\")",
       groups = "design"),
  list(name = "yusuf1985_table9", setup = 'dat <- escalc(measure="OR", ai=ai, n1i=n1i, ci=ci, n2i=n2i, data=dat.yusuf1985, subset=(table=="9")); dat <- dat[!is.na(dat$yi), ]',
       source = "metadat dat.yusuf1985, subset table==\"9\" minus the 2 double-zero trials (yi = NA), log odds ratios via escalc(measure=\"OR\") (0.5 added to zero cells, metafor default)"),
  list(name = "pritz1997", setup = 'dat <- escalc(measure="PLO", xi=xi, ni=ni, data=dat.pritz1997)',
       source = "metadat dat.pritz1997 (proportions), logit-transformed proportions via escalc(measure=\"PLO\") (0.5 added where xi=0 or xi=ni)"),
  list(name = "raudenbush1985", setup = "dat <- dat.raudenbush1985",
       source = "metadat dat.raudenbush1985 (teacher expectancy), standardized mean differences yi/vi as shipped",
       groups = "tester"),
  list(name = "li2007", setup = 'dat <- escalc(measure="OR", ai=ai, n1i=n1i, ci=ci, n2i=n2i, data=dat.li2007)',
       source = "metadat dat.li2007 (magnesium and MI), log odds ratios via escalc(measure=\"OR\") (0.5 added to zero cells)"),
  # small k (natural subsets)
  list(name = "bcg_systematic_k4", setup = 'dat <- escalc(measure="RR", ai=tpos, bi=tneg, ci=cpos, di=cneg, data=dat.bcg, subset=(alloc=="systematic"))',
       source = "metadat dat.bcg, subset alloc==\"systematic\" (k=4), log risk ratios"),
  list(name = "normand1999_k5", setup = 'dat <- escalc(measure="MD", m1i=m1i, sd1i=sd1i, n1i=n1i, m2i=m2i, sd2i=sd2i, n2i=n2i, data=dat.normand1999, subset=1:5)',
       source = "metadat dat.normand1999, studies 1-5 (k=5), raw mean differences"),
  list(name = "normand1999_k3", setup = 'dat <- escalc(measure="MD", m1i=m1i, sd1i=sd1i, n1i=n1i, m2i=m2i, sd2i=sd2i, n2i=n2i, data=dat.normand1999, subset=1:3)',
       source = "metadat dat.normand1999, studies 1-3 (edge case k=3), raw mean differences"),
  list(name = "bcg_alternate_k2", setup = 'dat <- escalc(measure="RR", ai=tpos, bi=tneg, ci=cpos, di=cneg, data=dat.bcg, subset=(alloc=="alternate"))',
       source = "metadat dat.bcg, subset alloc==\"alternate\" (edge case k=2), log risk ratios"),
  # synthetic edge cases
  list(name = "edge_identical_yi", setup = "dat <- data.frame(yi=rep(0.5, 5), vi=c(0.1, 0.2, 0.05, 0.3, 0.15))",
       source = "synthetic: identical yi (Q = 0, every tau2 estimate is exactly 0; knha scale s2w = 0 by metafor's eps rule)"),
  list(name = "edge_boundary", setup = "dat <- data.frame(yi=c(0.10, 0.30, 0.20, 0.25, 0.15, 0.22), vi=c(0.04, 0.05, 0.03, 0.06, 0.04, 0.05))",
       source = "synthetic: Q well below k-1, tau2 estimates truncated at the boundary 0"),
  list(name = "edge_vi_span", setup = "dat <- data.frame(yi=c(0.12, -0.35, 0.48, 1.1, -2.3, 4.0, -7.5), vi=10^(-3:3))",
       source = "synthetic: sampling variances spanning 1e-3 .. 1e3 (10^6 range)"),
  list(name = "edge_heterogeneous", setup = "dat <- data.frame(yi=c(-2.1, -0.8, 0.1, 1.4, 2.6, 3.9, 5.2, 0.7), vi=c(0.010, 0.020, 0.015, 0.030, 0.012, 0.025, 0.018, 0.022))",
       source = "synthetic: extremely heterogeneous (I2 > 99.9%)"),
  list(name = "edge_k1", setup = "dat <- data.frame(yi=0.3, vi=0.04)",
       source = "synthetic: a single study (metafor fits k=1: tau2=0, test forced to z)")
)

# ---------------------------------------------------------------------------------------------------------
# Independent checks of the iterative estimators (intercept-only model)
# ---------------------------------------------------------------------------------------------------------
Qgen <- function(t, y, v) { w <- 1 / (v + t); mu <- sum(w * y) / sum(w); sum(w * (y - mu)^2) }
llfun <- function(t, y, v, reml) {
  w <- 1 / (v + t); mu <- sum(w * y) / sum(w)
  ll <- -0.5 * sum(log(v + t)) - 0.5 * sum(w * (y - mu)^2)
  if (reml) ll <- ll - 0.5 * log(sum(w))
  ll
}
score <- function(t, y, v, reml) {  # d ll / d tau2
  w <- 1 / (v + t); mu <- sum(w * y) / sum(w); r <- y - mu
  s <- -0.5 * sum(w) + 0.5 * sum(w^2 * r^2)
  if (reml) s <- s + 0.5 * sum(w^2) / sum(w)
  s
}
upper_bound <- function(y, v) max(100, 100 * var(y), 100 * max(v))

# True optimum of the (RE)ML likelihood on [0, inf): fine log grid + uniroot on the score + optimize() check.
true_ml <- function(y, v, reml) {
  up <- upper_bound(y, v)
  grid <- c(0, exp(seq(log(1e-10 * max(1e-6, min(v))), log(up), length.out = 6000)))
  ll <- vapply(grid, llfun, 0, y = y, v = v, reml = reml)
  i <- which.max(ll)
  if (i == 1 && score(0, y, v, reml) <= 0) return(list(tau2 = 0, ll = ll[1], how = "boundary (score at 0 <= 0)"))
  lo <- grid[max(1, i - 1)]; hi <- grid[min(length(grid), i + 1)]
  root <- uniroot(score, c(lo, hi), y = y, v = v, reml = reml, tol = 1e-15, maxiter = 10000)$root
  opt <- optimize(llfun, c(lo, hi), y = y, v = v, reml = reml, maximum = TRUE, tol = 1e-14)$maximum
  if (abs(opt - root) > 1e-5 * max(1, root)) stop("grid/optimize/uniroot disagree: ", opt, " vs ", root)
  list(tau2 = root, ll = llfun(root, y, v, reml), how = "root of the score in the grid cell of the maximum; optimize() agrees")
}
# Root of the Paule-Mandel / empirical Bayes estimating equation Q(tau2) = k - 1.
true_pm <- function(y, v) {
  k <- length(y)
  if (Qgen(0, y, v) - (k - 1) <= 0) return(list(tau2 = 0, how = "Q(0) <= k-1"))
  root <- uniroot(function(t) Qgen(t, y, v) - (k - 1), c(0, upper_bound(y, v)), tol = 1e-15,
                  maxiter = 10000, extendInt = "downX")$root
  list(tau2 = root, how = "uniroot of Q(tau2) = k-1")
}
true_tau2 <- function(method, y, v) {
  if (length(y) < 2) return(NULL)
  switch(method, REML = true_ml(y, v, TRUE), ML = true_ml(y, v, FALSE), PM = true_pm(y, v), EB = true_pm(y, v), NULL)
}

# ---------------------------------------------------------------------------------------------------------
# Fitting helpers
# ---------------------------------------------------------------------------------------------------------
mkcall <- function(method, test, level, init = NULL, verbose = FALSE, ctrl = CTRL) {
  c2 <- if (is.null(ctrl)) "" else paste0(", control=list(", ctrl, if (!is.null(init)) paste0(", tau2.init=", f17(init)), ")")
  paste0('rma(yi, vi, data=dat, method="', method, '", test="', test, '", level=', level, c2,
         if (verbose) ", verbose=TRUE", ")")
}
# evaluate an R call string in env, collecting warnings
run <- function(code, env) {
  warns <- character(0)
  val <- withCallingHandlers(eval(parse(text = code), envir = env),
                             warning = function(w) { warns <<- c(warns, conditionMessage(w)); invokeRestart("muffleWarning") })
  list(value = val, warnings = unique(gsub("\n", " ", warns)))
}
iterations_of <- function(method, test, level, init, env) {
  if (!method %in% ITERATIVE || nrow(env$dat) == 1) return(0L)  # k = 1: no estimation at all
  out <- capture.output(invisible(run(mkcall(method, test, level, init, verbose = TRUE), env)))
  m <- regmatches(out, regexpr("converged after [0-9]+ iterations", out))
  if (length(m) == 0) return(NA_integer_)
  as.integer(gsub("[^0-9]", "", m[1]))
}

extract <- function(res, level, tau2max, ci_notes) {
  k <- res$k
  isFE <- res$method %in% c("FE", "EE", "CE")
  est <- c(res$beta); se <- res$se
  tci <- list(NULL, NULL); ici <- list(NULL, NULL); hci <- list(NULL, NULL)
  if (!isFE && k > 1) {
    ci <- confint(res, control = list(tol = 1e-12, tau2.max = tau2max))
    rr <- ci$random
    tci <- list(rr["tau^2", "ci.lb"], rr["tau^2", "ci.ub"])
    ici <- list(rr["I^2(%)", "ci.lb"], rr["I^2(%)", "ci.ub"])
    hci <- list(rr["H^2", "ci.lb"], rr["H^2", "ci.ub"])
    if (isTRUE(ci$ci.null)) ci_notes <- c(ci_notes, "Q-profile CI is the null set: Q(0) < lower chi2 quantile, both tau2 bounds = 0 (metafor prints '<0')")
    else if (rr["tau^2", "ci.lb"] == 0) ci_notes <- c(ci_notes, "tau2_ci_lower truncated at 0 (Q(0) < upper chi2 quantile)")
    if (identical(ci$ub.sign, ">")) ci_notes <- c(ci_notes, "WARNING: tau2_ci_upper capped at tau2.max")
  }
  pr <- predict(res)  # metafor gives no PI for FE models (pi.lb is NULL)
  riley <- list(NULL, NULL)
  if (k >= 3 && !isFE) {
    crit <- qt(1 - (1 - level) / 2, df = k - 2)
    riley <- list(est - crit * sqrt(res$tau2 + se^2), est + crit * sqrt(res$tau2 + se^2))
  }
  out <- list(k = k, estimate = est, se = se, stat = res$zval,
              df = if (res$test == "z") NULL else res$ddf,
              pvalue = res$pval, ci_lower = res$ci.lb, ci_upper = res$ci.ub,
              tau2 = res$tau2, tau2_se = nn(res$se.tau2),
              tau2_ci_lower = tci[[1]], tau2_ci_upper = tci[[2]], i2_ci_lower = ici[[1]], i2_ci_upper = ici[[2]],
              h2_ci_lower = hci[[1]], h2_ci_upper = hci[[2]],
              tau = sqrt(res$tau2), i2 = res$I2, h2 = res$H2,
              q = res$QE, q_df = k - 1, q_pvalue = res$QEp,
              pi_lower = nn(pr$pi.lb), pi_upper = nn(pr$pi.ub),
              pi_riley_lower = riley[[1]], pi_riley_upper = riley[[2]],
              weights = arr(weights(res)),
              converged = TRUE,  # metafor stops with an error when it does not converge
              iterations = NULL)
  list(result = out, notes = ci_notes)
}

fit_one <- function(ds, env, method, test, level) {
  y <- env$dat$yi; v <- env$dat$vi; k <- length(y)
  tau2max <- max(1e4, 1e3 * max(v), 1e3 * var(if (k > 1) y else c(y, y)))
  notes <- character(0)
  call0 <- mkcall(method, test, level)
  r0 <- run(paste0("res <- ", call0), env)
  res <- r0$value; used_call <- call0; init <- NULL
  notes <- c(notes, if (length(r0$warnings)) paste0("metafor warning: ", r0$warnings))
  truth <- if (method %in% c(ITERATIVE, ROOTFIND)) true_tau2(method, y, v) else NULL
  if (!is.null(truth)) {
    # several starting values (Fisher scoring); PM has no starting value (uniroot)
    if (method %in% ITERATIVE) {
      starts <- unique(c(0, 1e-4, 0.1 * res$tau2, 10 * res$tau2 + 0.1, 1, 10))
      alt <- vapply(starts, function(s) {
        r <- try(suppressWarnings(run(mkcall(method, test, level, s), env)$value), silent = TRUE)
        if (inherits(r, "try-error")) NA_real_ else r$tau2
      }, 0)
      spread <- max(abs(alt - res$tau2), na.rm = TRUE)
      if (spread > 1e-8 * max(1, res$tau2))
        notes <- c(notes, sprintf("starting values %s gave tau2 %s", paste(signif(starts, 4), collapse = ","), paste(signif(alt, 12), collapse = ",")))
    }
    dev <- abs(res$tau2 - truth$tau2)
    if (dev > 1e-9 * max(1, truth$tau2)) {
      msg <- sprintf("metafor (%s) stopped at tau2=%s, the true optimum is %s (%s); the fixture holds the true optimum", call0, f17(res$tau2), f17(truth$tau2), truth$how)
      if (method %in% ITERATIVE) {
        init <- truth$tau2
        used_call <- mkcall(method, test, level, init)
        res <- run(paste0("res <- ", used_call), env)$value
        if (abs(res$tau2 - truth$tau2) > 1e-9 * max(1, truth$tau2)) stop("restart at the optimum failed: ", ds$name, " ", method)
        notes <- c(notes, paste0(msg, ", refitted from tau2.init at the optimum"))
      } else {
        stop("PM root off: ", msg)
      }
      message("NOTE ", ds$name, " ", method, " ", test, ": ", msg)
    }
  }
  # metafor with its default (loose) control, for the record
  dflt <- try(suppressWarnings(run(mkcall(method, test, level, ctrl = NULL), env)$value), silent = TRUE)
  ex <- extract(res, level, tau2max, character(0))
  ex$result["iterations"] <- list(iterations_of(method, test, level, init, env))
  if (k == 1 && test != "z") notes <- c(notes, "k=1: metafor sets test=\"z\" (so df is null)")
  if (method == "FE") notes <- c(notes, "FE: I2 = max(0, 100*(Q-(k-1))/Q) and H2 = Q/(k-1) (Q-based); no tau2 SE or Q-profile CI")
  if (method == "EB") notes <- c(notes, "EB solves Q(tau2) = k-1 like PM (intercept-only), by metafor's scoring iteration")
  if (k > 1 && test %in% c("knha", "adhoc") && res$s2w == 0) notes <- c(notes, "knha: RSS <= .Machine$double.eps so metafor sets s2w = 0 (se = 0)")
  if (k > 1 && method != "FE") notes <- c(notes, sprintf("Q-profile: confint(res, control=list(tol=1e-12, tau2.max=%s))", f17(tau2max)))
  notes <- c(notes, ex$notes)
  fit <- list(method = method, test = test, level = level, r_call = used_call,
              confint_call = if (k > 1 && method != "FE") sprintf("confint(res, control=list(tol=1e-12, tau2.max=%s))", f17(tau2max)) else NULL,
              predict_call = "predict(res)",
              result = ex$result, notes = paste(notes, collapse = "; "))
  if (!inherits(dflt, "try-error")) {
    fit$metafor_default_control <- list(tau2 = dflt$tau2, estimate = c(dflt$beta), se = dflt$se)
  }
  fit
}

# ---------------------------------------------------------------------------------------------------------
# Sensitivity (REML, test z, level 0.95)
# ---------------------------------------------------------------------------------------------------------
check_reml_subsets <- function(y, v, tau2s, idx_fun, label) {
  bad <- character(0)
  for (i in seq_along(tau2s)) {
    ii <- idx_fun(i)
    if (length(ii) < 2 || is.na(tau2s[i])) next
    tr <- true_ml(y[ii], v[ii], TRUE)$tau2
    if (abs(tr - tau2s[i]) > 1e-8 * max(1, tr)) bad <- c(bad, sprintf("%s %d: metafor tau2=%s, true REML optimum %s", label, i, f17(tau2s[i]), f17(tr)))
  }
  bad
}

# metafor's leave1out()/cumul() return NA for a subset whose refit fails (e.g. Fisher scoring that
# oscillates around the optimum and hits maxiter). Such rows are filled with the true REML optimum,
# obtained by metafor itself with a damped step (stepadj=0.5) and checked against true_ml().
fill_na_rows <- function(block, env, idx_fun, label) {
  notes <- character(0)
  y <- env$dat$yi; v <- env$dat$vi
  for (i in seq_along(block$estimate)) {
    if (!is.na(block$estimate[[i]])) next
    ii <- idx_fun(i)
    code <- sprintf('rma(yi, vi, data=dat[c(%s), ], method="REML", test="z", level=0.95, control=list(%s, stepadj=0.5))',
                    paste(ii, collapse = ","), CTRL)
    r <- run(code, env)$value
    tr <- true_ml(y[ii], v[ii], TRUE)$tau2
    if (abs(r$tau2 - tr) > 1e-9 * max(1, tr)) stop("damped refit is not at the REML optimum: ", label, " ", i)
    vals <- list(estimate = c(r$beta), se = r$se, stat = r$zval, pvalue = r$pval, ci_lower = r$ci.lb, ci_upper = r$ci.ub,
                 tau2 = r$tau2, i2 = r$I2, h2 = r$H2, q = r$QE, q_pvalue = r$QEp)
    for (key in names(vals)) block[[key]][[i]] <- vals[[key]]
    notes <- c(notes, sprintf("%s row %d: metafor returns NA (its Fisher scoring does not converge on this subset: the steps oscillate around the optimum); the row holds the true REML optimum tau2 = %s from %s",
                              label, i, f17(r$tau2), code))
    message("NOTE ", label, " row ", i, " filled: ", code)
  }
  list(block = block, notes = notes)
}

sensitivity <- function(ds, env) {
  y <- env$dat$yi; v <- env$dat$vi; k <- length(y)
  base <- mkcall("REML", "z", 0.95)
  run(paste0("res <- ", base), env)
  res <- env$res
  s <- list(method = "REML", test = "z", level = 0.95, r_call = base)
  notes <- character(0)
  l1 <- run("leave1out(res)", env)$value
  s$leave1out <- list(r_call = "leave1out(res)", estimate = arr(l1$estimate), se = arr(l1$se), stat = arr(l1$zval),
                      pvalue = arr(l1$pval), ci_lower = arr(l1$ci.lb), ci_upper = arr(l1$ci.ub), tau2 = arr(l1$tau2),
                      i2 = arr(l1$I2), h2 = arr(l1$H2), q = arr(l1$Q), q_pvalue = arr(l1$Qp))
  fl <- fill_na_rows(s$leave1out, env, function(i) setdiff(seq_len(k), i), "leave1out")
  s$leave1out <- fl$block; notes <- c(notes, fl$notes)
  notes <- c(notes, check_reml_subsets(y, v, unlist(s$leave1out$tau2), function(i) setdiff(seq_len(k), i), "leave1out"))
  cu <- run("cumul(res)", env)$value
  s$cumul <- list(r_call = "cumul(res)", estimate = arr(cu$estimate), se = arr(cu$se), stat = arr(cu$zval),
                  pvalue = arr(cu$pval), ci_lower = arr(cu$ci.lb), ci_upper = arr(cu$ci.ub), tau2 = arr(cu$tau2),
                  i2 = arr(cu$I2), h2 = arr(cu$H2), q = arr(cu$Q), q_pvalue = arr(cu$Qp))
  fl <- fill_na_rows(s$cumul, env, function(i) seq_len(i), "cumul")
  s$cumul <- fl$block; notes <- c(notes, fl$notes)
  notes <- c(notes, check_reml_subsets(y, v, unlist(s$cumul$tau2), function(i) seq_len(i), "cumul"))
  inf <- run("influence(res)", env)$value$inf
  s$influence <- list(r_call = "influence(res)", rstudent = arr(inf$rstudent), cooks_distance = arr(inf$cook.d),
                      hat = arr(inf$hat), dffits = arr(inf$dffits), tau2_del = arr(inf$tau2.del), q_del = arr(inf$QE.del),
                      cov_r = arr(inf$cov.r), weight = arr(inf$weight))
  if (k >= 3) {
    rt <- run("regtest(res)", env)
    s$regtest_rma <- list(r_call = "regtest(res)  # model=\"rma\", predictor=\"sei\": rma(yi, vi, mods=~sqrt(vi), method=\"REML\", test=\"z\")",
                          stat = rt$value$zval, pvalue = rt$value$pval, df = NULL,
                          limit_estimate = rt$value$est, limit_ci_lower = rt$value$ci.lb, limit_ci_upper = rt$value$ci.ub,
                          tau2 = rt$value$fit$tau2, warnings = paste(rt$warnings, collapse = "; "))
    rl <- run('regtest(res, model="lm")', env)
    s$regtest_lm <- list(r_call = 'regtest(res, model="lm")  # lm(yi ~ sqrt(vi), weights=1/vi)',
                         stat = rl$value$zval, pvalue = rl$value$pval, df = rl$value$dfs,
                         limit_estimate = rl$value$est, limit_ci_lower = rl$value$ci.lb, limit_ci_upper = rl$value$ci.ub,
                         warnings = paste(rl$warnings, collapse = "; "))
    if (length(unique(y)) == 1) {
      # constant yi: the weighted LS fit is exact, residual SE = 0, t = 0/0 -> metafor prints rounding noise
      s$regtest_lm$undefined <- TRUE
      s$regtest_lm$note <- sprintf("undefined: yi constant, so the slope is 0 with residual SE 0 and t = 0/0; metafor's stat %s and p %s are rounding noise and set to null here",
                                   f17(rl$value$zval), f17(rl$value$pval))
      s$regtest_lm$stat <- NULL; s$regtest_lm$pvalue <- NULL
      s$regtest_lm["stat"] <- list(NULL); s$regtest_lm["pvalue"] <- list(NULL)
    }
  }
  if (!is.null(ds$groups)) {
    g <- as.character(env$dat[[ds$groups]])
    lev <- unique(g)
    groups <- list()
    for (L in lev) {
      code <- sprintf('rma(yi, vi, data=dat, subset=(%s=="%s"), method="REML", test="z", level=0.95, control=list(%s))', ds$groups, L, CTRL)
      r <- run(code, env)$value
      ex <- extract(r, 0.95, max(1e4, 1e3 * max(v)), character(0))
      tr <- true_ml(y[g == L], v[g == L], TRUE)$tau2
      if (abs(tr - r$tau2) > 1e-8 * max(1, tr)) notes <- c(notes, sprintf("subgroup %s: metafor tau2 %s vs true REML optimum %s", L, f17(r$tau2), f17(tr)))
      groups[[L]] <- list(r_call = code, result = ex$result)
    }
    est <- vapply(groups, function(x) x$result$estimate, 0); se <- vapply(groups, function(x) x$result$se, 0)
    u <- 1 / se^2; mub <- sum(u * est) / sum(u); qb <- sum(u * (est - mub)^2)
    mcode <- sprintf("rma(yi, vi, mods = ~ factor(%s), data=dat, method=\"REML\", test=\"z\", level=0.95, control=list(%s))", ds$groups, CTRL)
    m <- run(mcode, env)$value
    s$subgroups <- list(variable = ds$groups, groups_in_order = as.list(lev), labels = as.list(g),
                        separate = groups,
                        q_between = qb, q_between_df = length(lev) - 1,
                        q_between_pvalue = pchisq(qb, length(lev) - 1, lower.tail = FALSE),
                        q_between_how = "fixed-effect Q of the separate REML subgroup estimates: sum(u*(est-mubar)^2), u = 1/se^2, df = #groups - 1",
                        moderator_test = list(r_call = mcode, qm = m$QM, qm_df = m$QMdf[1], qm_pvalue = m$QMp, tau2 = m$tau2,
                                              note = "mixed-effects model with a common (residual REML) tau2; equals the between-group Q of subgroup estimates pooled with that common tau2"))
  }
  s$notes <- paste(notes, collapse = "; ")
  s
}

# ---------------------------------------------------------------------------------------------------------
# Main
# ---------------------------------------------------------------------------------------------------------
rver <- R.version.string
mver <- as.character(packageVersion("metafor"))
for (ds in DATASETS) {
  env <- new.env(parent = globalenv())
  eval(parse(text = ds$setup), envir = env)
  env$dat <- env$dat[!is.na(env$dat$yi) & !is.na(env$dat$vi), ]
  k <- nrow(env$dat)
  fits <- list()
  for (method in METHODS) for (test in TESTS) fits[[length(fits) + 1]] <- fit_one(ds, env, method, test, 0.95)
  fits[[length(fits) + 1]] <- fit_one(ds, env, "REML", "z", 0.9)
  fits[[length(fits) + 1]] <- fit_one(ds, env, "DL", "knha", 0.9)
  fx <- list(dataset = ds$name, source = ds$source, setup_r = ds$setup, r_version = rver, metafor_version = mver,
             metadat_version = as.character(packageVersion("metadat")), k = k,
             yi = arr(env$dat$yi), vi = arr(env$dat$vi), fits = fits)
  if (k >= 2) fx$sensitivity <- sensitivity(ds, env)
  writeLines(tojson(fx), file.path(fixdir, paste0(ds$name, ".json")))
  cat(sprintf("%-22s k=%-3d fits=%d\n", ds$name, k, length(fits)))
}
