"""Estimators that know nothing of CRMs: Kaplan-Meier and Aalen-Johansen (survival), Cox with Efron
ties and Firth (coxph), Firth logistic regression (firth),
Fine-Gray subdistribution hazards regression (finegray), Gray's test of cumulative incidence (gray)."""
