"""Autograder for "VAEs and Adversarial Attacks".

Layout, by responsibility:
- ``config``     the instructor's one config file (grading.toml)
- ``discovery``  finding the graded files in a submission
- ``sandbox``    running untrusted code: workers, protocol, isolation
- ``session``    a check's budgeted view of a part's worker
- ``registry``   how checks declare themselves (gradescope-utils vocabulary)
- ``plugin``     pytest hooks that turn check runs into outcomes
- ``report``     Gradescope results JSON; ``console`` the terminal table
- ``runner``     one grading run end to end; ``cli`` the command line
- ``checks``     the checks themselves, one package per part, one module per file
"""
__version__ = "0.1.0"
