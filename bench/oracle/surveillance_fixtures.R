# Runs R `surveillance` on the jobs of a JSON file and writes its answers to another JSON file.
#
#   Rscript bench/oracle/surveillance_fixtures.R JOBS.json ANSWERS.json
#
# Each job names a method (ears, glr, cusum, bayes, farrington), a count series, its frequency,
# the first monitored period (1-based) and the method's control list; the answer holds the
# package's upper bounds and alarms (and Farrington's expected counts, scores, p-values,
# dispersions and trend flags) for the monitored periods, or the error R raised. Only the package's
# outputs are used (as test data); none of its code is copied. Driven by surveillance_fixtures.py.

suppressPackageStartupMessages(library(surveillance))
suppressPackageStartupMessages(library(jsonlite))

args <- commandArgs(trailingOnly = TRUE)
jobs <- fromJSON(args[1], simplifyVector = TRUE, simplifyDataFrame = FALSE, simplifyMatrix = FALSE)

num <- function(x) { x <- as.numeric(x); x }

run_job <- function(job) {
  y <- as.integer(job$y)
  n <- length(y)
  freq <- job$freq
  ctl <- job$control
  first <- job$first
  range <- first:n
  s <- sts(observed = matrix(y, ncol = 1), frequency = freq, start = c(2000, 1))
  if (job$method == "ears") {
    control <- list(range = range, method = ctl$method, baseline = ctl$baseline, minSigma = ctl$minSigma)
    if (!is.null(ctl$alpha)) control$alpha <- ctl$alpha
    res <- earsC(s, control = control)
    return(list(upperbound = num(upperbound(res)), alarm = as.integer(alarms(res))))
  }
  if (job$method %in% c("glr", "cusum")) {
    control <- list(range = range, c.ARL = ctl$c, Mtilde = 1, M = -1, change = "intercept",
                    dir = "inc", ret = ctl$ret)
    if (job$method == "cusum") control$theta <- ctl$kappa
    if (!is.null(job$mu0)) {
      control$mu0 <- num(job$mu0)[range]
    } else {
      control$mu0 <- list(S = ctl$S, trend = ctl$trend, refit = FALSE)
    }
    res <- suppressMessages(glrpois(s, control = control))
    return(list(upperbound = num(upperbound(res)), alarm = as.integer(alarms(res)),
                mu0 = num(res@control$mu0)))
  }
  if (job$method == "bayes") {
    dp <- create.disProg(week = 1:n, observed = y, state = rep(0, n), freq = freq)
    res <- algo.bayes(dp, control = list(range = range, b = ctl$b, w = ctl$w, actY = ctl$actY,
                                         alpha = ctl$alpha))
    return(list(upperbound = num(res$upperbound), alarm = as.integer(res$alarm)))
  }
  if (job$method == "farrington") {
    control <- list(range = range, b = ctl$b, w = ctl$w, reweight = ctl$reweight,
                    weightsThreshold = ctl$weightsThreshold, alpha = ctl$alpha, trend = ctl$trend,
                    pThresholdTrend = ctl$pThresholdTrend, limit54 = num(ctl$limit54),
                    powertrans = ctl$powertrans, noPeriods = ctl$noPeriods,
                    pastWeeksNotIncluded = ctl$pastWeeksNotIncluded,
                    thresholdMethod = ctl$thresholdMethod, glmWarnings = FALSE)
    res <- suppressWarnings(farringtonFlexible(s, control = control))
    cc <- res@control
    return(list(upperbound = num(upperbound(res)), alarm = as.integer(alarms(res)),
                expected = num(cc$expected), score = num(cc$score), pvalue = num(cc$pvalue),
                phi = num(cc$phiVector), trend = num(cc$trend)))
  }
  stop(paste("unknown method", job$method))
}

answers <- lapply(jobs, function(job) {
  started <- proc.time()[["elapsed"]]
  out <- tryCatch(run_job(job), error = function(e) list(error = conditionMessage(e)))
  out$seconds <- proc.time()[["elapsed"]] - started
  out$id <- job$id
  out
})
meta <- list(r_version = R.version.string,
             surveillance_version = as.character(packageVersion("surveillance")))
writeLines(toJSON(list(meta = meta, answers = answers), auto_unbox = TRUE, digits = NA, na = "null"),
           args[2])
