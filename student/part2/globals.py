"""String constants shared by the attack, training and grading code (instructor-owned).

The attack / defence names double as the values accepted by ``train.py --train_strats``
and as the ``attack_function`` argument of ``adversarial_attack.test_attack``; the
hyper-parameter keys index the ``args`` / ``defense_args`` dictionaries.
"""

# Training strategies (defences) and attacks.
STANDARD = "standard"
FGSM = "fgsm"
PGD = "pgd"

# Keys of the hyper-parameter dictionaries.
ALPHA = "alpha"
EPSILON = "epsilon"
NUM_ITER = "num_iter"

# Dataset names accepted by data.py / models.py / train.py.
FASHIONMNIST = "fashionmnist"
CIFAR10 = "cifar10"

CIFAR10_LABELS = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
FASHIONMNIST_LABELS = [
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
    "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
]
