# A UvA DL1 2024 student's part 2, written for the grader's tests: the template's API
# (CIFAR-10 normalised with its mean and std, denormalize, batch-size-1 test loop) filled in
# the way the template's comments lead a student. Not a copy of any student's code.
import torch
import torch.nn as nn
import numpy as np
import torch.nn.functional as F
from globals import FGSM, PGD, ALPHA, EPSILON, NUM_ITER

CIFAR_MEAN = [0.4914, 0.4822, 0.4465]
CIFAR_STD = [0.247, 0.243, 0.261]


def denormalize(batch, mean=CIFAR_MEAN, std=CIFAR_STD):
    """Undo transforms.Normalize(mean, std) on a batch [B, C, H, W] (or [C, H, W])."""
    if isinstance(batch, np.ndarray):
        batch = torch.tensor(batch)
    mean = torch.as_tensor(mean, dtype=batch.dtype, device=batch.device)
    std = torch.as_tensor(std, dtype=batch.dtype, device=batch.device)
    return batch * std.view(1, -1, 1, 1) + mean.view(1, -1, 1, 1)


def normalize(batch, mean=CIFAR_MEAN, std=CIFAR_STD):
    mean = torch.as_tensor(mean, dtype=batch.dtype, device=batch.device)
    std = torch.as_tensor(std, dtype=batch.dtype, device=batch.device)
    return (batch - mean.view(1, -1, 1, 1)) / std.view(1, -1, 1, 1)


def fgsm_attack(image, data_grad, epsilon=0.25):
    # Get the sign of the data gradient (element-wise)
    sign_data_grad = data_grad.sign()
    # Create the perturbed image, scaled by epsilon
    perturbed_image = image + epsilon * sign_data_grad
    # Make sure values stay within valid range: clamp the real pixels, then back to normalised
    perturbed_image = normalize(torch.clamp(denormalize(perturbed_image), 0, 1))
    return perturbed_image


def fgsm_loss(model, criterion, inputs, labels, defense_args, return_preds=True):
    alpha = defense_args[ALPHA]
    epsilon = defense_args[EPSILON]
    inputs.requires_grad = True
    # Calculate the loss for the original image
    original_outputs = model(inputs)
    original_loss = criterion(original_outputs, labels)
    # Calculate the perturbation
    model.zero_grad()
    original_loss.backward(retain_graph=True)
    data_grad = inputs.grad.data
    perturbed = fgsm_attack(inputs, data_grad, epsilon).detach()
    # Calculate the loss for the perturbed image
    adv_outputs = model(perturbed)
    adv_loss = criterion(adv_outputs, labels)
    # Combine the two losses
    loss = alpha * original_loss + (1 - alpha) * adv_loss
    if return_preds:
        _, preds = torch.max(original_outputs, 1)
        return loss, preds
    else:
        return loss


def pgd_attack(model, data, target, criterion, args):
    alpha = args[ALPHA]
    epsilon = args[EPSILON]
    num_iter = args[NUM_ITER]

    perturbed_data = data.clone().detach()
    for i in range(num_iter):
        perturbed_data.requires_grad = True
        output = model(perturbed_data)
        loss = criterion(output, target)
        model.zero_grad()
        loss.backward()
        with torch.no_grad():
            perturbed_data = perturbed_data + alpha * perturbed_data.grad.sign()
            eta = torch.clamp(perturbed_data - data, min=-epsilon, max=epsilon)
            perturbed_data = normalize(torch.clamp(denormalize(data + eta), 0, 1))
        perturbed_data = perturbed_data.detach()
    return perturbed_data


def test_attack(model, test_loader, attack_function, attack_args):
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    correct = 0
    criterion = nn.CrossEntropyLoss()
    adv_examples = []
    for data, target in test_loader:
        data, target = data.to(device), target.to(device)
        data.requires_grad = True  # Very important for attack!
        output = model(data)
        init_pred = output.max(1, keepdim=True)[1]

        # If the initial prediction is wrong, don't attack
        if init_pred.item() != target.item():
            continue

        loss = F.nll_loss(output, target)
        model.zero_grad()

        if attack_function == FGSM:
            loss.backward()
            data_grad = data.grad.data
            perturbed_data = fgsm_attack(data, data_grad, attack_args[EPSILON])
            output = model(perturbed_data)
        elif attack_function == PGD:
            perturbed_data = pgd_attack(model, data, target, criterion, attack_args)
            output = model(perturbed_data)
        else:
            print(f"Unknown attack {attack_function}")

        # Check for success
        final_pred = output.max(1, keepdim=True)[1]
        if final_pred.item() == target.item():
            correct += 1
        else:
            # Save some adv examples for visualization later
            if len(adv_examples) < 5:
                original_data = data.squeeze().detach().cpu()
                adv_ex = perturbed_data.squeeze().detach().cpu()
                adv_examples.append((init_pred.item(), final_pred.item(),
                                     denormalize(original_data), denormalize(adv_ex)))

    # Calculate final accuracy
    final_acc = correct / float(len(test_loader))
    print(f"Attack {attack_function}, args: {attack_args}\nTest Accuracy = {correct} / {len(test_loader)} = {final_acc}")
    return final_acc, adv_examples
